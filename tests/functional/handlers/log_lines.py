"""Prints event["lines"] lines to stdout, then answers."""


def handler(event, context):
    for i in range(int(event.get("lines", 1))):
        print(f"{event.get('message', 'line')} {i}")
    return {"printed": int(event.get("lines", 1))}
