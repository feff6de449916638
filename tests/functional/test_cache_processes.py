"""The disk tier shared by processes, as Lambda environments (or a warm host) would share it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from preheat.local.s3 import S3Server
from preheat.push import push

MB = 1024 * 1024

# A fresh process resolving one URI: it counts its chunk GETs, says "ready", waits for
# the go-file (so that several start at once), resolves, prints the result, then holds
# the version until its stdin closes.
CHILD = r"""
import sys, time, orjson
from pathlib import Path
from preheat.cache import resolve
from preheat.cache.client import make_client
from preheat.settings import Settings

uri, go = sys.argv[1], Path(sys.argv[2])
settings = Settings.from_env()
client = make_client(settings)
gets = []
client.meta.events.register(
    "before-send.s3.GetObject", lambda request, **_: gets.append(request.url)
)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
try:
    res = resolve(uri, settings, s3_client=client)
    out = {"tier": res.tier, "bytes": res.bytes_by_tier, "dir": str(res.directory),
           "chunk_gets": sum("/blobs/sha256/" in u for u in gets)}
except Exception as exc:
    out = {"error": type(exc).__name__, "message": str(exc)}
print(orjson.dumps(out).decode(), flush=True)
sys.stdin.read()
"""


class Child:
    def __init__(self, uri: str, go: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, uri, str(go)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def result(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the child died before answering"
        out: dict[str, Any] = orjson.loads(line)
        return out

    def exit(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


@pytest.fixture
def world(
    s3_server_factory: Callable[[], S3Server], tmp_path: Path, artifact: Callable[..., Path]
) -> Iterator[Callable[..., Any]]:
    """push(version, seed, size) -> uri; run(uri, ...) -> result of a fresh process."""
    server = s3_server_factory()
    client = server.client()
    # moto keeps one state per process, across servers: a bucket of this test's own.
    bucket = f"shared-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    cache = tmp_path / "cache"
    children: list[Child] = []

    def env(**extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **server.env(),
            "PREHEAT_CACHE_DIR": str(cache),
            "PREHEAT_LOCAL_PATHS": "",
            "PREHEAT_PREFETCH": "0",
            **extra,
        }

    def push_version(version: str, seed: int, size: int = 2 * MB) -> str:
        src = artifact(seed, {"data.bin": size}, name="m", version=version)
        return push(src, f"s3://{bucket}/p", name="m", version=version, s3_client=client).uri

    @contextmanager
    def started(uris: list[str], **extra: str) -> Iterator[list[Child]]:
        go = tmp_path / f"go-{time.monotonic_ns()}"
        batch = [Child(u, go, env(**extra)) for u in uris]
        children.extend(batch)
        go.touch()
        yield batch

    def run(uri: str, **extra: str) -> dict[str, Any]:
        with started([uri], **extra) as (child,):
            out = child.result()
            child.exit()
            return out

    world_api: Any = type("World", (), {})()
    world_api.push = push_version
    world_api.run = run
    world_api.started = started
    world_api.cache = cache
    yield world_api
    for child in children:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()


def test_two_processes_at_once_download_the_version_once(world: Any) -> None:
    uri = world.push("1", seed=1, size=12 * MB)
    with world.started([uri, uri]) as children:
        results = [c.result() for c in children]
        for c in children:
            c.exit()
    assert all("error" not in r for r in results), results
    tiers = sorted(r["tier"] for r in results)
    assert tiers == ["disk", "s3"]
    assert sum(r["chunk_gets"] for r in results) == 12  # 12 chunks of 1 MiB, fetched once
    assert results[0]["dir"] == results[1]["dir"]
    assert sorted(r["bytes"].get("s3", 0) for r in results) == [0, 12 * MB]


def test_least_recently_used_versions_are_evicted_whole(world: Any) -> None:
    uris = {v: world.push(v, seed=int(v)) for v in ("1", "2", "3")}
    budget = str(5 * MB)  # room for two 2 MiB versions, not three
    for v in ("1", "2", "1"):  # 2 is now the least recently used
        assert "error" not in world.run(uris[v], PREHEAT_CACHE_MAX_BYTES=budget)
    third = world.run(uris["3"], PREHEAT_CACHE_MAX_BYTES=budget)
    assert third["tier"] == "s3"
    versions = sorted(p.name.split("@")[1] for p in (world.cache / "versions").iterdir())
    assert versions == ["1", "3"]
    again = world.run(uris["1"], PREHEAT_CACHE_MAX_BYTES=budget)
    assert again["tier"] == "disk" and again["chunk_gets"] == 0


def test_a_version_in_use_by_another_process_is_never_evicted(world: Any) -> None:
    v1, v2 = world.push("1", seed=1), world.push("2", seed=2)
    budget = str(3 * MB)  # one version at a time
    with world.started([v1], PREHEAT_CACHE_MAX_BYTES=budget) as (holder,):
        assert holder.result()["tier"] == "s3"
        blocked = world.run(v2, PREHEAT_CACHE_MAX_BYTES=budget)
        assert blocked["error"] == "CacheFullError"
        assert "PREHEAT_CACHE_MAX_BYTES" in blocked["message"]
        assert (world.cache / "versions").is_dir()
        assert [p.name.split("@")[1] for p in (world.cache / "versions").iterdir()] == ["1"]
        holder.exit()
    # Once the holder is gone, v1 may go.
    assert world.run(v2, PREHEAT_CACHE_MAX_BYTES=budget)["tier"] == "s3"
    assert [p.name.split("@")[1] for p in (world.cache / "versions").iterdir()] == ["2"]
