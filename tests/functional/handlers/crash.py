"""Kills its own process mid-invoke when asked, as a segfault or an OOM kill would."""

import os
import signal
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    how = event.get("crash")
    if how == "exit":
        os._exit(3)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "raise":
        raise ValueError("bad input: " + str(event.get("value")))
    return {"pid": os.getpid()}
