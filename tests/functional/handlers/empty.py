"""Does nothing: the emulator's own INIT and invoke overhead."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    return None
