"""The disk tier shared by processes, as Lambda environments (or a warm host) would share it."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.cache.disk import DiskCache, version_key
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push
from preheat.uri import parse
from tests.fixtures.models import BuiltModel
from tests.reliability.faultproxy import FaultProxy, Rule

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

# A handler process, as Lambda Managed Instances run several in one execution environment
# sharing its /tmp: after the go-file it loads PREHEAT_MODEL_URI as the inference function
# does at INIT (prefetch included), answers one prediction, then holds until stdin closes.
HANDLER = r"""
import hashlib, sys, time, orjson
from pathlib import Path

go, x = Path(sys.argv[1]), orjson.loads(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
try:
    import numpy as np
    import preheat

    model = preheat.load_model()
    report = model.init_report
    y = model.predict({"x": np.asarray(x, dtype="float32")})
    out = {"tier": report["tier"], "bytes": report["bytes_by_tier"],
           "manifest": hashlib.sha256(model.manifest.to_json()).hexdigest(),
           "outputs": {k: v.tolist() for k, v in y.items()}}
except Exception as exc:
    out = {"error": type(exc).__name__, "message": str(exc)}
print(orjson.dumps(out).decode(), flush=True)
sys.stdin.read()
"""


class Child:
    def __init__(self, args: list[str], env: dict[str, str], script: str = CHILD) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
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
    # In front of the server for the tests that count or slow down requests.
    proxy = FaultProxy(server.endpoint_url).start()
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

    def push_model(path: Path, name: str) -> str:
        return push(path, f"s3://{bucket}/p", name=name, version="1", s3_client=client).uri

    @contextmanager
    def started(uris: list[str], **extra: str) -> Iterator[list[Child]]:
        go = tmp_path / f"go-{time.monotonic_ns()}"
        batch = [Child([u, str(go)], env(**extra)) for u in uris]
        children.extend(batch)
        go.touch()
        yield batch

    @contextmanager
    def handlers(n: int, uri: str, x: list[Any], **extra: str) -> Iterator[list[Child]]:
        go = tmp_path / f"go-{time.monotonic_ns()}"
        variables = env(PREHEAT_MODEL_URI=uri, PREHEAT_PREFETCH="1", **extra)
        batch = [Child([str(go), orjson.dumps(x).decode()], variables, HANDLER) for _ in range(n)]
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
    world_api.handlers = handlers
    world_api.push_model = push_model
    world_api.cache = cache
    world_api.proxy = proxy
    world_api.client = client
    world_api.bucket = bucket
    yield world_api
    for child in children:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()
    proxy.stop()


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


@pytest.mark.slow
def test_four_handler_processes_in_one_environment_download_once_and_serve_the_same(
    world: Any, dense_model: BuiltModel
) -> None:
    uri = world.push_model(dense_model.path, "dense")
    # Every chunk arrives slowly, so that all four are asking while the one download runs.
    world.proxy.add(Rule("slow", path="/blobs/", times=None, seconds=1.0))
    x = np.random.default_rng(11).standard_normal((3, 4)).astype("float32")
    proxied = {"AWS_ENDPOINT_URL_S3": world.proxy.endpoint_url}
    with world.handlers(4, uri, x.tolist(), **proxied) as procs:
        results = [p.result() for p in procs]
        for p in procs:
            p.exit()

    assert all("error" not in r for r in results), results
    # Exactly one download: every chunk of the version was asked for once, by one process.
    blobs = world.client.list_objects_v2(Bucket=world.bucket, Prefix="p/blobs/")["Contents"]
    gets = world.proxy.counts("/blobs/")
    assert len(gets) == len(blobs) > 0 and set(gets.values()) == {1}
    assert sorted(r["tier"] for r in results) == ["disk", "disk", "disk", "s3"]
    # All four serve the verified version: one manifest, the one in S3, and one answer.
    stored = world.client.get_object(Bucket=world.bucket, Key=f"p/models/dense/1/{c.MANIFEST_NAME}")
    want_digest = hashlib.sha256(mf.loads(stored["Body"].read()).to_json()).hexdigest()
    assert {r["manifest"] for r in results} == {want_digest}
    outputs = [r["outputs"] for r in results]
    assert all(o == outputs[0] for o in outputs)
    (out_spec,) = dense_model.signature.outputs
    want = dense_model.reference({"x": x})[out_spec.name]
    np.testing.assert_allclose(outputs[0][out_spec.name], want, rtol=1e-6)
    (version_dir,) = (world.cache / "versions").iterdir()
    assert mf.verify_dir(version_dir, mf.read(version_dir)) == []


def test_a_process_killed_mid_download_releases_the_lock_and_serves_nothing_partial(
    world: Any,
) -> None:
    chunks = 12
    uri = world.push("1", seed=7, size=chunks * MB)
    key = version_key(parse(uri))
    cache = DiskCache(world.cache)
    proxied = {"AWS_ENDPOINT_URL_S3": world.proxy.endpoint_url}
    # The first four chunks come at once, the rest trickle for longer than the test runs:
    # the first process is killed with part of the version written.
    world.proxy.add(Rule("slow", path="/blobs/", times=None, skip=4, seconds=60.0))
    with world.started([uri], **proxied) as (doomed,):
        tmp = world.cache / "tmp"
        assert wait_for(lambda: world.proxy.count("/blobs/") > 4 and _partial(tmp, key) != [])
        assert _lock_held(world.cache / "locks" / f"{key}.lock")
        assert cache.lookup(key) is None  # nothing of it is visible while it is written

        with world.started([uri], **proxied) as (heir,):
            time.sleep(1.0)  # the heir is waiting for the download lock by now
            assert heir.proc.poll() is None
            world.proxy.clear()  # its own GETs come at full speed
            doomed.proc.kill()
            assert doomed.proc.wait(timeout=10) == -9
            killed_at = time.monotonic()
            result = heir.result()
            took = time.monotonic() - killed_at
            heir.exit()

    assert "error" not in result, result
    # The heir took over the lock at once (not after the lock's timeout) and fetched the
    # whole version itself: the dead process's partial files were thrown away, not served.
    assert took < 30
    assert result["tier"] == "s3" and result["chunk_gets"] == chunks
    hit = cache.lookup(key)
    assert hit is not None and hit.bad == ()
    assert mf.verify_dir(hit.directory, hit.manifest) == []
    assert [p.name for p in tmp.iterdir()] == []  # the dead process's temp dir is gone


def _partial(tmp: Path, key: str) -> list[Path]:
    """The files of `key` being written in temp dirs (a download in progress)."""
    return [f for d in tmp.glob(f"{key}~*") if d.is_dir() for f in d.rglob("*") if f.is_file()]


def _lock_held(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if this probe won it
    return False


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_reservation_left_by_a_process_killed_as_it_committed_is_not_counted(
    world: Any,
) -> None:
    v1, v2 = world.push("1", seed=1), world.push("2", seed=2)
    budget = str(5 * MB)  # room for both 2 MiB versions
    assert world.run(v1, PREHEAT_CACHE_MAX_BYTES=budget)["tier"] == "s3"
    # What a process killed between its commit's rename and the removal of its reservation
    # leaves: the reservation alone, its bytes already counted as the version it committed.
    key = version_key(parse(v1))
    (world.cache / "tmp" / f"{key}~4194304~0.reserve").write_text(str(2 * MB))

    second = world.run(v2, PREHEAT_CACHE_MAX_BYTES=budget)

    assert second.get("tier") == "s3", second
    # Counted twice, it would have made the cache evict version 1 to fit version 2.
    versions = sorted(p.name.split("@")[1] for p in (world.cache / "versions").iterdir())
    assert versions == ["1", "2"]
    assert list((world.cache / "tmp").iterdir()) == []
