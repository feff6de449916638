"""Answers over the Runtime API itself, then lingers and exits instead of asking for /next.

So the emulator hands the next event to an environment whose runtime is about to end.
"""

import json
import os
import time
import urllib.request


def handler(event, context):
    if event.get("exit"):
        api = os.environ["AWS_LAMBDA_RUNTIME_API"]
        url = f"http://{api}/2018-06-01/runtime/invocation/{context.aws_request_id}/response"
        body = json.dumps({"answered": True, "pid": os.getpid()}).encode()
        urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")).read()
        time.sleep(float(event.get("linger_s", 1.0)))
        raise SystemExit(1)
    return {"pid": os.getpid()}
