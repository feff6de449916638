"""Fails at import, during INIT."""

from typing import Any

raise RuntimeError("model file missing: refusing to start")


def handler(event: dict[str, Any], context: Any) -> Any:  # never reached
    return None
