"""A fresh process doing what INIT does with the cache: resolve a URI, print one JSON line.

Run as `python resolve_child.py URI [GO_FILE]`: with GO_FILE it says "ready" and waits for
that file to appear, so several processes can start their fetch at the same moment.
Settings come from the PREHEAT_* environment, boto3's endpoint from AWS_ENDPOINT_URL_S3.

`python resolve_child.py --zygote` imports everything once, then forks a fresh process per
URI read from stdin ("forked PID", the child's JSON line, then "exit PID CODE"): a process
to kill costs a fork, not an interpreter start, so fifty kills fit in a test.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import orjson

from preheat.artifact import manifest as mf
from preheat.cache import resolve
from preheat.cache.client import make_client
from preheat.exceptions import PreheatError
from preheat.settings import Settings


def main(argv: list[str]) -> int:
    uri = argv[1]
    settings = Settings.from_env()
    client = make_client(settings)
    if len(argv) > 2:
        go = Path(argv[2])
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.002)
    try:
        res = resolve(uri, settings, s3_client=client)
    except PreheatError as exc:
        print(orjson.dumps({"error": type(exc).__name__, "message": str(exc)}).decode())
        return 1
    # What a loader would read: every byte checked against the manifest.
    bad = mf.verify_dir(res.directory, res.manifest)
    out = {
        "dir": str(res.directory),
        "tier": res.tier,
        "version": res.manifest.version,
        "stale": res.stale,
        "bad": bad,
    }
    print(orjson.dumps(out).decode(), flush=True)
    return 0


def zygote() -> int:
    # Imported here so that each child pays nothing for them after the fork.
    import boto3  # noqa: F401
    import botocore.session  # noqa: F401

    for line in sys.stdin:
        uri = line.strip()
        if not uri:
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = main(["child", uri])
            finally:
                sys.stdout.flush()
                os._exit(code)
        print(f"forked {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {pid} {os.waitstatus_to_exitcode(status)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(zygote() if sys.argv[1:] == ["--zygote"] else main(sys.argv))
