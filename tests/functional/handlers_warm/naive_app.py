"""The usual warmer's handler side: a warm event sleeps a fixed 75 ms and says nothing else."""

from __future__ import annotations

import time
from typing import Any

# The same imports as warm_app, so that a comparison measures the warmers, not INIT.
import preheat  # noqa: F401


def handler(event: Any, context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and event.get("warmer"):
        time.sleep(0.075)
        return {"warmed": True}
    return {"ok": True}
