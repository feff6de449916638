"""The memory tier: models already loaded in this process, by resolved version and settings."""

from __future__ import annotations

import threading
from collections.abc import Hashable

_lock = threading.Lock()
_models: dict[Hashable, object] = {}


def get(key: Hashable) -> object | None:
    with _lock:
        return _models.get(key)


def put(key: Hashable, obj: object) -> None:
    with _lock:
        _models[key] = obj


def clear() -> None:
    """Forget every model (for tests and for SnapStart restore hooks)."""
    with _lock:
        _models.clear()
