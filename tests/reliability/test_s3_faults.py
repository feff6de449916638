"""S3 misbehaving under the cache: every fault is retried for its chunk alone, never loaded."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.cache import resolve
from preheat.cache.client import make_client
from preheat.exceptions import ArtifactError, FetchError, IntegrityError
from preheat.settings import Settings
from tests.reliability.conftest import BUCKET, Pushed, cache_files, version_dirs
from tests.reliability.faultproxy import FaultProxy, Rule

# Small enough that a stalled read is noticed fast, large enough for loopback under load.
TIMEOUT_S = 0.5
FAULTS = ("slowdown", "internal", "reset", "truncate", "flip", "stall")


# What a persistent fault's message must mention, so that an operator knows what broke.
CAUSES = {
    "slowdown": "503 slowdown",
    "internal": "500 internalerror",
    "reset": "connection reset",
    "stall": "read timeout",
    "flip": "sha256 is",
}


def settings_for(cache: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "cache_dir": cache,
        "fetch_timeout_s": TIMEOUT_S,
        "fetch_retries": 2,
        "fetch_concurrency": 4,
        "local_paths": (),
    }
    base.update(kw)
    return Settings.from_env(env={}, **base)


def rule(fault: str, path: str, times: int | None = 1, timeout_s: float = TIMEOUT_S) -> Rule:
    # A stall outlasts every read timeout the client may use.
    return Rule(fault, path, times=times, seconds=6 * timeout_s)  # type: ignore[arg-type]


def assert_no_partial_state(cache: Path) -> None:
    """Nothing half-written is left where the next INIT could take it for a version."""
    assert version_dirs(cache) == []
    leftovers = [p for p in cache_files(cache) if p.startswith(("tmp/", "versions/"))]
    assert leftovers == [], leftovers


@pytest.mark.parametrize("fault", FAULTS)
def test_one_bad_answer_retries_that_chunk_alone(
    fault: str, proxy: FaultProxy, blob_v1: Pushed, tmp_path: Path
) -> None:
    target = blob_v1.chunk_key("variables/data", 1)
    # Counting GETs per chunk needs healthy chunks never to time out: on two cores loaded by
    # the rest of the suite, a 1 MiB chunk through the proxy can take longer than 0.5 s.
    timeout_s = 4 * TIMEOUT_S
    proxy.add(rule(fault, target, timeout_s=timeout_s))
    settings = settings_for(tmp_path / "cache", fetch_timeout_s=timeout_s)

    got = resolve(blob_v1.uri, settings, s3_client=make_client(settings))

    assert proxy.faults, "the fault was never injected"
    assert got.tier == "s3"
    assert mf.verify_dir(got.directory, got.manifest) == []
    assert got.manifest == blob_v1.manifest
    counts = proxy.counts("/blobs/sha256/")
    assert counts.pop(f"/{BUCKET}/{target}") == 2, "the damaged chunk is fetched again, once"
    assert set(counts.values()) == {1}, f"healthy chunks are fetched once each: {counts}"
    assert len(counts) == len(set(blob_v1.chunk_keys)) - 1


@pytest.mark.parametrize("fault", ["slowdown", "internal", "reset", "flip", "stall"])
def test_s3_broken_for_good_fails_init_fast_naming_the_chunk(
    fault: str, proxy: FaultProxy, blob_v1: Pushed, tmp_path: Path
) -> None:
    target = blob_v1.chunk_key("variables/data", 2)
    proxy.add(rule(fault, target, times=None))
    settings = settings_for(tmp_path / "cache")

    start = time.monotonic()
    with pytest.raises(ArtifactError) as info:
        resolve(blob_v1.uri, settings, s3_client=make_client(settings))
    elapsed = time.monotonic() - start

    err = info.value
    assert isinstance(err, IntegrityError if fault == "flip" else FetchError)
    message = str(err)
    assert "variables/data chunk 3/4" in message, message
    assert target.rsplit("/", 1)[1] in message
    assert CAUSES[fault] in message.lower(), message
    assert "\n" not in message
    # Lambda cuts INIT off at 10 s without a word; preheat must speak first.
    print(f"{fault}: INIT failed after {elapsed:.2f} s: {message}")
    assert elapsed < c.LAMBDA_INIT_LIMIT_S, f"{elapsed:.1f} s"
    assert_no_partial_state(tmp_path / "cache")


def test_stale_version_served_when_s3_is_down_and_allowed(
    proxy: FaultProxy,
    blob_v1: Pushed,
    blob_v2: Pushed,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = tmp_path / "cache"
    settings = settings_for(cache, allow_stale=True)
    first = resolve(blob_v1.uri, settings, s3_client=make_client(settings))
    assert not first.stale

    proxy.add(rule("slowdown", "/", times=None))  # every request, manifests included
    with caplog.at_level(logging.WARNING, logger="preheat"):
        got = resolve(blob_v2.uri, settings, s3_client=make_client(settings))

    assert got.stale
    assert got.manifest.version == "1"
    assert got.version_uri == blob_v1.uri
    assert mf.verify_dir(got.directory, got.manifest) == []
    assert any("stale" in r.getMessage() for r in caplog.records)


def test_stale_refused_unless_allowed(
    proxy: FaultProxy, blob_v1: Pushed, blob_v2: Pushed, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    settings = settings_for(cache)
    resolve(blob_v1.uri, settings, s3_client=make_client(settings))

    proxy.add(rule("slowdown", "/", times=None))
    with pytest.raises(FetchError, match="503"):
        resolve(blob_v2.uri, settings, s3_client=make_client(settings))


def test_stale_version_served_when_only_chunks_fail(
    proxy: FaultProxy, blob_v1: Pushed, blob_v2: Pushed, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path / "cache", allow_stale=True)
    resolve(blob_v1.uri, settings, s3_client=make_client(settings))

    proxy.add(rule("internal", "/blobs/sha256/", times=None))
    got = resolve(blob_v2.uri, settings, s3_client=make_client(settings))

    assert got.stale and got.manifest.version == "1"
    assert mf.verify_dir(got.directory, got.manifest) == []


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["stall", "slowdown", "internal", "reset"])
def test_default_settings_fail_a_broken_fetch_before_the_init_limit(
    fault: str, proxy: FaultProxy, blob_v1: Pushed, tmp_path: Path
) -> None:
    proxy.add(Rule(fault, "/blobs/sha256/", times=None, seconds=120))  # type: ignore[arg-type]
    settings = Settings.from_env(env={}, cache_dir=tmp_path / "cache", local_paths=())
    outcome: list[BaseException] = []

    def init() -> None:
        try:
            resolve(blob_v1.uri, settings, s3_client=make_client(settings))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=init, daemon=True)
    worker.start()
    # Lambda would kill the environment here, and the user would see only a timeout.
    worker.join(c.LAMBDA_INIT_LIMIT_S)
    assert not worker.is_alive(), "INIT still fetching when Lambda's INIT limit ran out"
    assert outcome and isinstance(outcome[0], FetchError), outcome
    assert "chunk" in str(outcome[0]) and CAUSES[fault] in str(outcome[0]).lower()
