"""Prints event["lines"] lines to stdout, then answers."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    for i in range(int(event.get("lines", 1))):
        print(f"{event.get('message', 'line')} {i}")
    return {"printed": int(event.get("lines", 1))}
