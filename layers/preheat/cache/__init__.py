"""The tiered model cache: memory → read-only local path → disk (/tmp) → S3.

Submodules load on first use: `import preheat` imports only `prefetch` from here, so that
it stays light when no model is configured.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from preheat.cache import memory
    from preheat.cache.resolver import Resolved, resolve

__all__ = ["Resolved", "memory", "resolve"]


def __getattr__(name: str) -> Any:
    if name in ("resolve", "Resolved"):
        return getattr(importlib.import_module("preheat.cache.resolver"), name)
    if name == "memory":
        return importlib.import_module("preheat.cache.memory")
    raise AttributeError(f"module 'preheat.cache' has no attribute {name!r}")
