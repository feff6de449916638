"""Sleeps for event["seconds"], then answers."""

import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    time.sleep(float(event.get("seconds", 0)))
    return {"slept": event.get("seconds", 0)}
