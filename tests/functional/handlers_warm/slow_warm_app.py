"""A warm-aware handler whose INIT takes as long as SLOW_INIT_S says (default 10 s)."""

from __future__ import annotations

import os
import time
from typing import Any

from preheat.warm import warm_handler

time.sleep(float(os.environ.get("SLOW_INIT_S", "10")))


@warm_handler
def handler(event: Any, context: Any) -> dict[str, Any]:
    return {"ok": True}
