"""The disk tier on its own: atomic commits, the cheap check, LRU eviction, holds, budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from preheat.artifact import manifest as mf
from preheat.cache.disk import DiskCache, version_key
from preheat.exceptions import CacheFullError, ConfigurationError
from preheat.uri import parse
from tests.fixtures.s3 import random_files, write_artifact

MB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 10
        return self.now


def add_version(
    cache: DiskCache, version: str, size: int, max_bytes: int | None = None, seed: int = 0
) -> str:
    """Put a version into the cache as the S3 tier would: reserve, write, commit."""
    key = version_key(parse(f"s3://bkt/p/models/m/{version}"))
    with cache.writing(key):
        tmp = cache.reserve(key, size, max_bytes, 10**12)
        manifest = write_artifact(tmp, random_files(seed, {"data": size}), version=version)
        (tmp / "manifest.json").unlink()
        cache.commit(tmp, key, manifest, "s3://bkt/p")
    cache.touch(key)
    return key


@pytest.fixture
def cache(tmp_path: Path) -> DiskCache:
    return DiskCache(tmp_path / "cache", clock=Clock())


def test_a_committed_version_is_found_whole_and_nothing_is_left_in_tmp(cache: DiskCache) -> None:
    key = add_version(cache, "1", MB)
    hit = cache.lookup(key)
    assert hit is not None and hit.bad == ()
    assert (hit.directory / "data").stat().st_size == MB
    assert mf.verify_dir(hit.directory, hit.manifest) == []
    assert list((cache.root / "tmp").iterdir()) == []


def test_a_missing_version_is_a_miss(cache: DiskCache) -> None:
    assert cache.lookup(version_key(parse("s3://bkt/p/models/m/9"))) is None


def test_a_file_written_in_place_fails_the_check(cache: DiskCache) -> None:
    key = add_version(cache, "1", MB)
    data = cache.directory(key) / "data"
    with data.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00corrupt\x00")
    hit = cache.lookup(key)
    assert hit is not None and [f.path for f in hit.bad] == ["data"]


def test_a_touched_but_intact_file_is_rehashed_and_accepted(cache: DiskCache) -> None:
    key = add_version(cache, "1", MB)
    os.utime(cache.directory(key) / "data", (1, 1))
    hit = cache.lookup(key)
    assert hit is not None and hit.bad == ()


def test_a_truncated_or_deleted_file_fails_the_check(cache: DiskCache) -> None:
    key = add_version(cache, "1", MB)
    os.truncate(cache.directory(key) / "data", 10)
    hit = cache.lookup(key)
    assert hit is not None and [f.path for f in hit.bad] == ["data"]
    (cache.directory(key) / "data").unlink()
    hit = cache.lookup(key)
    assert hit is not None and [f.path for f in hit.bad] == ["data"]


def test_a_corrupt_manifest_on_disk_discards_the_version(cache: DiskCache) -> None:
    key = add_version(cache, "1", MB)
    (cache.directory(key) / "manifest.json").write_bytes(b"{broken")
    assert cache.lookup(key) is None
    assert not cache.directory(key).exists()


def test_eviction_removes_least_recently_used_whole_versions(cache: DiskCache) -> None:
    budget = 3 * MB + MB // 2
    k1 = add_version(cache, "1", MB, budget, seed=1)
    k2 = add_version(cache, "2", MB, budget, seed=2)
    k3 = add_version(cache, "3", MB, budget, seed=3)
    cache.touch(k1)  # 1 is now the most recently used; 2 is the oldest
    k4 = add_version(cache, "4", MB, budget, seed=4)
    present = {e.key for e in cache.entries()}
    assert present == {k1, k3, k4}
    assert not cache.directory(k2).exists()
    k5 = add_version(cache, "5", 2 * MB, budget, seed=5)
    assert {e.key for e in cache.entries()} == {k4, k5}
    assert not cache.directory(k3).exists() and not cache.directory(k1).exists()


def test_a_version_held_by_this_process_is_never_evicted(cache: DiskCache) -> None:
    budget = 2 * MB + MB // 2
    k1 = add_version(cache, "1", MB, budget, seed=1)
    cache.hold(k1)
    k2 = add_version(cache, "2", MB, budget, seed=2)
    add_version(cache, "3", MB, budget, seed=3)
    keys = {e.key for e in cache.entries()}
    assert k1 in keys and k2 not in keys


def test_no_room_even_after_eviction_raises_cache_full_naming_the_setting(
    cache: DiskCache,
) -> None:
    k1 = add_version(cache, "1", MB, 2 * MB)
    cache.hold(k1)
    key = version_key(parse("s3://bkt/p/models/m/big"))
    with cache.writing(key), pytest.raises(CacheFullError) as info:
        cache.reserve(key, 3 * MB, 2 * MB, 0)
    message = str(info.value)
    assert "PREHEAT_CACHE_MAX_BYTES" in message and str(cache.root) in message
    assert info.value.needed == 3 * MB
    assert cache.lookup(k1) is not None  # what was there is untouched


def test_reservations_of_writers_in_progress_count_against_the_budget(cache: DiskCache) -> None:
    k1 = version_key(parse("s3://bkt/p/models/m/1"))
    k2 = version_key(parse("s3://bkt/p/models/m/2"))
    with cache.writing(k1):
        cache.reserve(k1, 2 * MB, 3 * MB, 0)
        with cache.writing(k2), pytest.raises(CacheFullError):
            cache.reserve(k2, 2 * MB, 3 * MB, 0)


def test_temp_dirs_of_dead_writers_are_cleaned(cache: DiskCache) -> None:
    k1 = version_key(parse("s3://bkt/p/models/m/1"))
    with cache.writing(k1):
        tmp = cache.reserve(k1, 2 * MB, 3 * MB, 0)
    # The writer is gone (its lock released) but its temp dir and reservation remain.
    assert tmp.exists()
    k2 = version_key(parse("s3://bkt/p/models/m/2"))
    with cache.writing(k2):
        cache.reserve(k2, 2 * MB, 3 * MB, 0)
    assert not tmp.exists()


def test_unwritable_cache_dir_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError, match="PREHEAT_CACHE_DIR"):
        DiskCache(blocker / "cache")


def test_keys_differ_per_bucket_and_prefix_and_are_single_segments() -> None:
    a = version_key(parse("s3://bkt/p/models/m/1"))
    b = version_key(parse("s3://bkt/q/models/m/1"))
    c = version_key(parse("s3://other/p/models/m/1"))
    assert len({a, b, c}) == 3
    assert all("/" not in k and k.startswith("m@1@") for k in (a, b, c))
