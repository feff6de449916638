"""The fetch started at import: handed over once, to a matching caller, errors included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from preheat.cache import prefetch
from preheat.exceptions import ArtifactNotFound
from preheat.settings import Settings


def settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", local_paths=(), **kw)  # type: ignore[arg-type]


def test_take_hands_over_the_fetch_once(tmp_path: Path, artifact: Callable[..., Path]) -> None:
    directory = artifact(1, {"data": 1000})
    s = settings(tmp_path)
    prefetch.start(str(directory), s)
    future = prefetch.take(str(directory), s)
    assert future is not None
    resolved = future.result(timeout=30)
    assert resolved.directory == directory.resolve() and resolved.tier == "local"
    assert prefetch.take(str(directory), s) is None


def test_take_refuses_a_different_uri_or_different_fetch_settings(
    tmp_path: Path, artifact: Callable[..., Path]
) -> None:
    directory = artifact(1, {"data": 10})
    s = settings(tmp_path)
    prefetch.start(str(directory), s)
    assert prefetch.take(str(directory) + "-other", s) is None
    assert prefetch.take(str(directory), s.with_(cache_dir=tmp_path / "elsewhere")) is None
    # Settings that only concern loading do not matter to the fetch.
    future = prefetch.take(str(directory), s.with_(warmup=False))
    assert future is not None
    future.result(timeout=30)


def test_an_error_in_the_background_surfaces_at_result(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    s = settings(tmp_path)
    prefetch.start(missing, s)
    future = prefetch.take(missing, s)
    assert future is not None
    with pytest.raises(ArtifactNotFound, match="no-such-model"):
        future.result(timeout=30)


def test_nothing_starts_without_a_model_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREHEAT_MODEL_URI", raising=False)
    assert prefetch.start_from_env() is None


def test_nothing_starts_when_prefetch_is_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREHEAT_MODEL_URI", str(tmp_path))
    monkeypatch.setenv("PREHEAT_PREFETCH", "off")
    assert prefetch.start_from_env() is None


def test_bad_settings_are_left_for_load_model_to_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREHEAT_MODEL_URI", "s3://bkt/models/m/1")
    monkeypatch.setenv("PREHEAT_FETCH_CONCURRENCY", "lots")
    assert prefetch.start_from_env() is None
