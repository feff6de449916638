"""Leaves a background thread appending to event["path"] after it answers, holding for event["hold"] s."""

import os
import threading
import time
from typing import Any

_started = False


def _tick(path: str) -> None:
    while True:
        with open(path, "a") as f:
            f.write("t")
        time.sleep(0.01)


def handler(event: dict[str, Any], context: Any) -> Any:
    global _started
    if not _started:
        _started = True
        threading.Thread(target=_tick, args=(event["path"],), daemon=True).start()
    time.sleep(float(event.get("hold", 0)))
    return {"ticks": os.path.getsize(event["path"]) if os.path.exists(event["path"]) else 0}
