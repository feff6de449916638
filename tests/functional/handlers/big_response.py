"""Answers with more than Lambda's 6 MB response limit."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    return {"blob": "x" * (6 * 1024 * 1024 + 10)}
