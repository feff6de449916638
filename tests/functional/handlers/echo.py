"""Echoes the event with what the environment looks like from inside."""

import os
from typing import Any

COLD = True


def handler(event: dict[str, Any], context: Any) -> Any:
    global COLD
    first, COLD = COLD, False
    return {
        "event": event,
        "first": first,
        "pid": os.getpid(),
        "log_stream": context.log_stream_name,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
