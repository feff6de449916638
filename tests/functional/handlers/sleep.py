"""Sleeps for event["seconds"], then answers."""

import time


def handler(event, context):
    time.sleep(float(event.get("seconds", 0)))
    return {"slept": event.get("seconds", 0)}
