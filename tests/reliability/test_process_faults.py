"""Processes killed mid-fetch, disks that fill up, and processes racing on one cache directory."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pytest

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.cache import resolve
from preheat.cache.client import make_client
from preheat.cache.disk import DiskCache
from preheat.exceptions import CacheFullError
from preheat.settings import Settings
from preheat.tools.local.s3 import S3Server
from tests.reliability.conftest import (
    BUCKET,
    CHUNK,
    Pushed,
    build_manifest,
    cache_files,
    env_for,
    make_blob_artifact,
    upload,
    version_dirs,
)
from tests.reliability.faultproxy import FaultProxy, Rule

CHILD = Path(__file__).with_name("resolve_child.py")
KILLS = 50
SEED = 7


def assert_cache_sound(root: Path) -> None:
    """Every version the cache would serve verifies byte for byte; nothing partial is in it."""
    for directory in version_dirs(root):
        manifest = mf.read(directory)
        assert mf.verify_dir(directory, manifest) == [], f"corrupt version {directory.name}"
        extra = (
            {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
            - {f.path for f in manifest.files}
            - {c.MANIFEST_NAME}
        )
        assert extra == set(), f"stray files in {directory.name}: {extra}"
    for entry in DiskCache(root).entries():
        assert (root / "versions" / entry.key).is_dir()


class Zygote:
    """resolve_child.py --zygote: forks a fresh resolving process per request."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), "--zygote"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in: IO[str] = self.proc.stdin
        self._out: IO[str] = self.proc.stdout

    def run(self, uri: str, kill_after: float) -> tuple[int, dict[str, Any] | None]:
        """Start a child on `uri`, SIGKILL it after `kill_after` s; (exit code, its JSON)."""
        self._in.write(uri + "\n")
        self._in.flush()
        line = self._out.readline()
        assert line.startswith("forked "), line
        pid = int(line.split()[1])
        timer = threading.Timer(kill_after, self._kill, (pid,))
        timer.start()
        result: dict[str, Any] | None = None
        try:
            while True:
                line = self._out.readline()
                assert line, "the zygote died"
                if line.startswith(f"exit {pid} "):
                    return int(line.split()[2]), result
                if line.startswith("{"):
                    result = orjson.loads(line)
        finally:
            timer.cancel()

    @staticmethod
    def _kill(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # it may have finished first
            os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        self._in.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def kill_artifact(tmp_path: Path) -> Path:
    d = make_blob_artifact(
        tmp_path / "kill", 11, {"variables/data": 3 * CHUNK + 100, "saved_model.pb": 4000}
    )
    build_manifest(d, "killme", "0")
    return d


@pytest.mark.slow
def test_sigkill_at_random_points_of_a_fetch_never_corrupts_the_cache(
    proxy: FaultProxy, moto: S3Server, direct: Any, kill_artifact: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    # Each chunk trickles out over 0.3 s and two are fetched at once: a fetch lasts ~0.8 s,
    # long enough for most kills to land inside it.
    proxy.add(Rule("slow", "/blobs/sha256/", times=None, seconds=0.3))
    env = env_for(
        proxy,
        moto,
        PREHEAT_CACHE_DIR=str(cache),
        PREHEAT_FETCH_CONCURRENCY="2",
        PREHEAT_LOCAL_PATHS="",
    )
    zygote = Zygote(env)
    rng = random.Random(SEED)
    version = 1
    current = upload(direct, kill_artifact, "killme", str(version))
    outcomes: Counter[str] = Counter()
    try:
        for _ in range(KILLS):
            before = proxy.count("/blobs/sha256/")
            code, result = zygote.run(current.uri, kill_after=rng.uniform(0.0, 1.5))
            fetched = proxy.count("/blobs/sha256/") - before
            assert_cache_sound(cache)
            if code == 0:
                assert result is not None and result["bad"] == [], result
                assert result["version"] == str(version)
                outcomes["completed"] += 1
                version += 1
                current = upload(direct, kill_artifact, "killme", str(version))
            else:
                assert code == -signal.SIGKILL, (code, result)
                outcomes["killed mid-fetch" if fetched else "killed before any chunk"] += 1
        # The restart after the last kill finishes the job on the same disk.
        code, result = zygote.run(current.uri, kill_after=60)
        assert code == 0 and result is not None and result["bad"] == [], result
    finally:
        zygote.close()
    assert_cache_sound(cache)
    print(f"{KILLS} SIGKILLs (seed {SEED}): {dict(outcomes)}")
    assert outcomes["killed mid-fetch"] >= KILLS // 4, outcomes
    # Every version eventually completed, so no leftover of any killed writer may remain.
    assert [p for p in cache_files(cache) if p.startswith("tmp/")] == []
    assert len(version_dirs(cache)) == version


# ---------------------------------------------------------------------------- full disk


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Any]:
    """mount(size) → a fresh tmpfs of `size` bytes; all unmounted at teardown."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


# From far too small to just enough: the disk fills during a chunk, a file rename, the
# manifest or the metadata, or not at all.
DISK_SIZES = [256 * 1024, CHUNK, 2 * CHUNK, 3 * CHUNK, 3 * CHUNK + CHUNK // 2]
DISK_SIZES += [3 * CHUNK + CHUNK // 2 + k * 8192 for k in range(1, 5)] + [8 * CHUNK]


def test_full_disk_is_a_clear_error_never_a_half_written_version(
    proxy: FaultProxy, blob_v1: Pushed, tiny_disk: Any
) -> None:
    outcomes: Counter[str] = Counter()
    messages: set[str] = set()
    for size in DISK_SIZES:
        cache = tiny_disk(size) / "cache"
        # A budget far above the disk's size: the disk itself runs out, not the budget.
        settings = Settings.from_env(
            env={}, cache_dir=cache, cache_max_bytes=10**9, local_paths=(), fetch_retries=0
        )
        try:
            got = resolve(blob_v1.uri, settings, s3_client=make_client(settings))
        except CacheFullError as exc:
            outcomes["CacheFullError"] += 1
            messages.add(str(exc).replace(str(cache), "CACHE"))
            assert str(cache) in str(exc)
            assert version_dirs(cache) == []
            assert [p for p in cache_files(cache) if p.startswith("tmp/") and "~" in p] == []
        else:
            outcomes["fits"] += 1
            assert mf.verify_dir(got.directory, got.manifest) == []
        assert_cache_sound(cache)
    print(f"full disk, {len(DISK_SIZES)} sizes: {dict(outcomes)}", *sorted(messages), sep="\n")
    assert outcomes["CacheFullError"] and outcomes["fits"]


def test_budget_smaller_than_the_version_refuses_before_fetching(
    proxy: FaultProxy, blob_v1: Pushed, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    settings = Settings.from_env(env={}, cache_dir=cache, cache_max_bytes=CHUNK, local_paths=())

    with pytest.raises(CacheFullError) as info:
        resolve(blob_v1.uri, settings, s3_client=make_client(settings))

    assert c.ENV_CACHE_MAX_BYTES in str(info.value)
    assert proxy.count("/blobs/sha256/") == 0
    assert version_dirs(cache) == []
    assert [p for p in cache_files(cache) if p.startswith("tmp/")] == []


def test_budget_for_one_version_evicts_the_older(
    proxy: FaultProxy, moto: S3Server, blob_v1: Pushed, blob_v2: Pushed, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    budget = max(blob_v1.manifest.total_bytes, blob_v2.manifest.total_bytes) + 1000
    settings = Settings.from_env(env={}, cache_dir=cache, cache_max_bytes=budget, local_paths=())
    # Each INIT in its own process: a live process holds its version against eviction.
    env = env_for(
        proxy,
        moto,
        PREHEAT_CACHE_DIR=str(cache),
        PREHEAT_CACHE_MAX_BYTES=str(budget),
        PREHEAT_LOCAL_PATHS="",
    )
    for pushed in (blob_v1, blob_v2):
        out = subprocess.run(
            [sys.executable, str(CHILD), pushed.uri],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert orjson.loads(out.stdout.splitlines()[-1])["bad"] == []
    kept = version_dirs(cache)
    assert [d.name.split("@")[1] for d in kept] == ["2"]
    assert_cache_sound(cache)
    assert settings.cache_budget() == budget


# ---------------------------------------------------------------------------- races


@pytest.mark.parametrize("processes", [2, 8])
def test_processes_racing_on_one_cache_download_each_chunk_once(
    processes: int, proxy: FaultProxy, moto: S3Server, direct: Any, tmp_path: Path
) -> None:
    d = make_blob_artifact(tmp_path / "race", 20 + processes, {"variables/data": 2 * CHUNK + 1})
    build_manifest(d, f"race{processes}", "1")
    pushed = upload(direct, d, f"race{processes}", "1")
    cache = tmp_path / "cache"
    go = tmp_path / "go"
    # Slow chunks keep the download window open while the others arrive.
    proxy.add(Rule("slow", "/blobs/sha256/", times=None, seconds=0.5))
    env = env_for(proxy, moto, PREHEAT_CACHE_DIR=str(cache), PREHEAT_LOCAL_PATHS="")
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), pushed.uri, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, out + err
        results.append(orjson.loads(out.splitlines()[-1]))

    assert all(r["bad"] == [] for r in results)
    assert len({r["dir"] for r in results}) == 1
    counts = proxy.counts("/blobs/sha256/")
    assert sorted(counts) == sorted(f"/{BUCKET}/{k}" for k in set(pushed.chunk_keys))
    assert set(counts.values()) == {1}, counts
    assert Counter(r["tier"] for r in results)["s3"] == 1
    assert_cache_sound(cache)
