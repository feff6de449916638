"""Sleeps at import for INIT_SLEEP_S, or RETRY_SLEEP_S when a marker in /tmp shows a retry."""

import os
import tempfile
import time
from typing import Any

_marker = os.path.join(tempfile.gettempdir(), "slow-init-started")
_retry = os.path.exists(_marker)
open(_marker, "w").close()
time.sleep(float(os.environ.get("RETRY_SLEEP_S" if _retry else "INIT_SLEEP_S", "0")))


def handler(event: dict[str, Any], context: Any) -> Any:
    return {"retried_init": _retry, "pid": os.getpid()}
