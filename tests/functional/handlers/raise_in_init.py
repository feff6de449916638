"""Fails at import, during INIT."""

raise RuntimeError("model file missing: refusing to start")


def handler(event, context):  # never reached
    return None
