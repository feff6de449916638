"""Registers SnapStart hooks that note when they ran, in this process and in SNAP_MARKS.

FAIL_BEFORE_SNAPSHOT or FAIL_AFTER_RESTORE make that hook raise; AFTER_RESTORE_SLEEP_S
makes the after-restore hook take that long. The event {"arrive": DIR, "n": N} holds the
invoke until N invokes have arrived in DIR, so that N environments serve at once.
"""

import os
import time
from typing import Any

from snapshot_restore_py import register_after_restore, register_before_snapshot

EVENTS = ["init"]


def _mark(name: str) -> None:
    EVENTS.append(name)
    print(f"hook {name} ran in {os.getpid()}", flush=True)
    marks = os.environ.get("SNAP_MARKS")
    if marks:
        with open(os.path.join(marks, f"{name}-{os.getpid()}"), "w") as f:
            f.write(f"{time.time()}")


@register_before_snapshot
def before_snapshot() -> None:
    _mark("before_snapshot")
    if os.environ.get("FAIL_BEFORE_SNAPSHOT"):
        raise RuntimeError("the model's sockets would not close")


@register_after_restore
def after_restore() -> None:
    _mark("after_restore")
    time.sleep(float(os.environ.get("AFTER_RESTORE_SLEEP_S", "0")))
    if os.environ.get("FAIL_AFTER_RESTORE"):
        raise RuntimeError("credentials could not be renewed")


def handler(event: dict[str, Any], context: Any) -> Any:
    EVENTS.append("invoke")
    if "arrive" in event:
        open(os.path.join(event["arrive"], context.aws_request_id), "w").close()
        deadline = time.monotonic() + 20
        while len(os.listdir(event["arrive"])) < int(event["n"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    return {
        "events": list(EVENTS),
        "pid": os.getpid(),
        "init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "log_stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
    }
