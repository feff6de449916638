"""A cheap handler wrapped in warm_handler: real requests may ask it to stay busy a while."""

from __future__ import annotations

import time
from typing import Any

from preheat.warm import state, warm_handler

state.mark_init_done()


@warm_handler
def handler(event: Any, context: Any) -> dict[str, Any]:
    busy_ms = event.get("busy_ms", 0) if isinstance(event, dict) else 0
    time.sleep(busy_ms / 1000)
    return {"environment_id": state.environment_id, "log_stream": state.log_stream}
