"""Writes event["text"] to event["path"]: lets a test see that an Event invoke ran."""

import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    tmp = event["path"] + ".part"
    with open(tmp, "w") as f:
        f.write(event["text"])
    os.replace(tmp, event["path"])
    return {"written": event["path"]}
