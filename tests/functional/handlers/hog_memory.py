"""Allocates memory and keeps it: HOG_AT_INIT_MB at INIT, the event's "mb" per invoke."""

import os
from typing import Any

_HELD: list[bytearray] = []


def _allocate(mb: int) -> None:
    for _ in range(mb // 16):
        # bytearray zero-fills, so every page is touched and resident.
        _HELD.append(bytearray(16 * 1024 * 1024))


if os.environ.get("HOG_AT_INIT_MB"):
    _allocate(int(os.environ["HOG_AT_INIT_MB"]))


def handler(event: dict[str, Any], context: Any) -> Any:
    _allocate(int(event.get("mb", 0)))
    return {"held_mb": 16 * len(_HELD), "pid": os.getpid()}
