"""Imports something, then takes longer than any test's INIT limit."""

import email.mime.text  # noqa: F401
import time

time.sleep(60)


def handler(event: object, context: object) -> None:
    return None
