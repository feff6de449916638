"""The memory tier: a process-level registry of loaded models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from preheat.cache import memory


@pytest.fixture(autouse=True)
def empty() -> Iterator[None]:
    memory.clear()
    yield
    memory.clear()


def test_get_returns_what_was_put_under_the_same_key_only() -> None:
    model = object()
    assert memory.get(("s3://b/models/m/1", "warmup")) is None
    memory.put(("s3://b/models/m/1", "warmup"), model)
    assert memory.get(("s3://b/models/m/1", "warmup")) is model
    assert memory.get(("s3://b/models/m/2", "warmup")) is None


def test_clear_forgets_everything() -> None:
    memory.put("k", 1)
    memory.clear()
    assert memory.get("k") is None
