"""Start the model fetch at `import preheat`, in background threads (filled in by the cache)."""

from __future__ import annotations


def start_from_env() -> None:
    """If PREHEAT_MODEL_URI is set and prefetch is on, begin resolving it now."""
