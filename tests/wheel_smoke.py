"""Smoke test of the built wheel: build it, install it in a fresh virtualenv, use it.

Run from the checkout with the dev virtualenv: `python -m tests.wheel_smoke`; `.ci/run`
calls it after the lint and the tests. Not collected by pytest (no `test_` prefix): it
builds and installs, which takes a minute or more. The installed `preheat` is the wheel's
alone; the moto server and the boto3 clients that talk to it come from the dev virtualenv,
so that only what a user of the wheel runs is under test. Everything it starts is stopped
and its temporary directory removed, also when a check fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from preheat.tools.local.s3 import S3Server
from tests.fixtures.emulator import lambda_client
from tests.functional.test_deploy import CHUNK, make_runtime_layer, payload, write_litert_artifact

ROOT = Path(__file__).resolve().parents[1]
VERBS = (
    "slim", "push", "layer", "emulate", "bench", "profile", "demo", "deploy", "destroy", "prewarm",
)  # fmt: skip
ECHO = """
def handler(event, context):
    return {"event": event, "request_id": context.aws_request_id}
"""
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class SmokeFailed(Exception):
    """A check of the installed wheel failed; the message says which and what it saw."""


def say(message: str) -> None:
    print(f"wheel smoke: {message}", flush=True)


def run(cmd: Sequence[str], *, timeout_s: float, env: dict[str, str] | None = None) -> str:
    """Run `cmd`; its stdout, or SmokeFailed naming the command and its last error lines."""
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SmokeFailed(f"`{' '.join(cmd[:4])} …` exited with {proc.returncode}:\n{tail}")
    return proc.stdout


def build_wheel(out: Path) -> Path:
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        timeout_s=600)  # fmt: skip
    wheels = sorted(out.glob("preheat-*.whl"))
    if len(wheels) != 1:
        raise SmokeFailed(f"expected one preheat wheel in {out}, found {wheels}")
    return wheels[0]


def install(wheel: Path, venv: Path, extras: str) -> Path:
    """A fresh virtualenv holding the wheel with `extras`; the path of its `preheat`."""
    run([sys.executable, "-m", "venv", str(venv)], timeout_s=300)
    spec = f"preheat[{extras}] @ {wheel.as_uri()}" if extras else f"preheat @ {wheel.as_uri()}"
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", spec], timeout_s=900)
    return venv / "bin" / "preheat"


def check_help(preheat: Path) -> None:
    text = run([str(preheat), "--help"], timeout_s=60)
    missing = [v for v in VERBS if v not in text]
    if missing:
        raise SmokeFailed(f"`preheat --help` does not list {missing}")
    for verb in VERBS:
        run([str(preheat), verb, "--help"], timeout_s=60)


def _json_line(stream: IO[str], proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([stream], [], [], left)
        if not ready:
            break
        line = stream.readline()
        if not line:
            raise SmokeFailed(f"preheat emulate exited with {proc.wait()} before answering")
        if line.strip().startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise SmokeFailed(f"no JSON line from preheat emulate within {timeout_s:g} s")


def check_emulate(preheat: Path, work: Path) -> None:
    """`preheat emulate` serves an echo function that boto3 invokes; Ctrl-C stops it cleanly."""
    code = work / "echo"
    code.mkdir()
    (code / "app.py").write_text(ECHO)
    cmd = [str(preheat), "emulate", "--json", "--quiet", "--port", "0",
           "--function", f"echo={code}:app.handler", "--memory", "256", "--timeout", "10"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(work)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        started = _json_line(proc.stdout, proc, 60)
        client = lambda_client(started["endpoint_url"], read_timeout_s=60)
        response = client.invoke(FunctionName="echo", Payload=b'{"smoke": 1}')
        answer = json.loads(response["Payload"].read())
        if response.get("FunctionError") or answer.get("event") != {"smoke": 1}:
            raise SmokeFailed(f"the echo function answered {answer!r}")
        proc.send_signal(signal.SIGINT)
        code_ = proc.wait(timeout=60)
        if code_ != 0:
            raise SmokeFailed(f"preheat emulate exited with {code_} after Ctrl-C")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        if proc.stdout is not None:
            proc.stdout.close()


def check_deploy(preheat: Path, work: Path) -> None:
    """`preheat deploy --dry-run`, a real deploy and `preheat destroy`, against moto."""
    suffix = uuid.uuid4().hex[:8]
    stack, bucket = f"smoke-{suffix}", f"preheat-smoke-{suffix}"
    model = write_litert_artifact(work / "model", {"model.tflite": payload(1, 2 * CHUNK)})
    layer = make_runtime_layer(work / "runtime.zip")
    common = ["--stack", stack, "--bucket", bucket, "--model", str(model),
              "--region", "us-east-1", "--runtime-layer", str(layer)]  # fmt: skip
    with S3Server() as server:
        env = {
            **os.environ,
            **DUMMY_AWS,
            "AWS_ENDPOINT_URL": server.endpoint_url,
            "TMPDIR": str(work),
        }
        dry = json.loads(run([str(preheat), "deploy", "--json", "--dry-run", *common],
                             timeout_s=300, env=env))  # fmt: skip
        if not dry["dry_run"] or dry["plan"]["stack_action"] != "create":
            raise SmokeFailed(f"the dry run planned {dry['plan']!r}")
        say("deploy --dry-run planned a new stack")
        # moto runs no function, so the prewarm after the deploy is skipped.
        done = json.loads(run([str(preheat), "deploy", "--json", "--no-prewarm", *common],
                              timeout_s=300, env=env))["done"]  # fmt: skip
        if done is None or done["stack_status"] != "UPDATE_COMPLETE":
            raise SmokeFailed(f"the deploy ended with {done!r}")
        say(f"deploy uploaded {done['uploaded_bytes']} bytes; stack {done['stack_status']}")
        run([str(preheat), "destroy", "--yes", "--stack", stack, "--region", "us-east-1"],
            timeout_s=300, env=env)  # fmt: skip
        say("destroy removed the stack")


def check_demo(preheat: Path, work: Path) -> None:
    """`preheat demo` on the small sample: every strategy cold-starts from the wheel alone."""
    out = run(
        [str(preheat), "demo", "--json", "--model", "dense", "--cold-starts", "1",
         "--warm-requests", "2", "--network", "loopback", "--workdir", str(work / "demo")],
        timeout_s=900,
    )  # fmt: skip
    doc = json.loads(out)
    broken = [
        s["name"]
        for s in doc["strategies"]
        if not s["available"] or s["summary"]["cold_starts"] != 1
    ]
    if broken or not doc["strategies"]:
        raise SmokeFailed(f"preheat demo did not cold-start {broken or 'any strategy'}")


def main(argv: Sequence[str] | None = None) -> int:
    # moto's CloudFormation names each resource type it does not model; that is not news here.
    warnings.filterwarnings("ignore", "Tried to parse AWS", UserWarning)
    logging.getLogger("moto").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--extras",
        default="local",
        help="the extras installed with the wheel (default local); with tensorflow and "
        "litert, `preheat demo` runs too",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="preheat-wheel-smoke-") as tmp:
        work = Path(tmp)
        try:
            wheel = build_wheel(work / "wheel")
            say(f"built {wheel.name}")
            preheat = install(wheel, work / "venv", args.extras)
            say(f"installed it with [{args.extras}] in a fresh virtualenv")
            check_help(preheat)
            say("preheat --help and every verb's --help answer")
            check_emulate(preheat, work)
            say("preheat emulate served an echo function to boto3 and stopped on Ctrl-C")
            check_deploy(preheat, work)
            if {"tensorflow", "litert"} <= set(args.extras.split(",")):
                check_demo(preheat, work)
                say("preheat demo cold-started every strategy on the dense sample")
        except (SmokeFailed, subprocess.TimeoutExpired) as exc:
            print(f"wheel smoke: FAILED: {exc}", file=sys.stderr, flush=True)
            return 1
    say(f"passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
