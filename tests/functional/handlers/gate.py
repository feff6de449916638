"""Holds its environment until the test says so, so concurrency tests do not depend on timing.

{"arrive": DIR, "n": N}: wait until N invocations have arrived in DIR (one file each).
{"wait_for": PATH}: wait until PATH exists. Either wait gives up after event["max_s"] (20 s).
"""

import os
import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    deadline = time.monotonic() + float(event.get("max_s", 20))
    arrived = 0
    if "arrive" in event:
        open(os.path.join(event["arrive"], context.aws_request_id), "w").close()
        while time.monotonic() < deadline:
            arrived = len(os.listdir(event["arrive"]))
            if arrived >= int(event["n"]):
                break
            time.sleep(0.01)
    if "wait_for" in event:
        while not os.path.exists(event["wait_for"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    return {"arrived": arrived, "released": time.monotonic() < deadline, "pid": os.getpid()}
