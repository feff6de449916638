"""The inference function under load on the local Lambda: correctness first, then latency.

A seeded dense model is pushed to an embedded S3; client threads send prediction requests
(warm pings mixed in) through boto3's `lambda` client, and one environment is SIGKILLed in
the middle of an invocation. Every answer is checked against the model's own output.

    .venv/bin/python scripts/bench_load.py [--requests 2000] [--threads 8] [--environments 4]
                                           [--no-crash] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from preheat import aws
from preheat import constants as c
from preheat.tools import assets
from preheat.tools.bench.stats import percentile
from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push
from preheat.tools.sample_models import make_sample_model

PING: dict[str, Any] = {"preheat": {"warm": {}}}


def lambda_client(endpoint_url: str) -> Any:
    return aws.client(
        "lambda",
        endpoint_url=endpoint_url,
        region="us-east-1",
        credentials=("testing", "testing"),
        retries=aws.NO_RETRIES,
        read_timeout=120,
        pool=64,
    )


def make_requests(n: int, ping_every: int, seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [
        PING
        if i % ping_every == ping_every - 1
        else rng.standard_normal((int(rng.integers(1, 4)), 4)).astype("float32")
        for i in range(n)
    ]


def crash_one(emu: Emulator, go: threading.Event, killed: list[str]) -> None:
    """SIGKILL an environment's process caught in the middle of an invocation."""
    go.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for env in emu.environments("inference"):
            if env.state == "busy" and env.pid:
                os.kill(env.pid, signal.SIGKILL)
                killed.append(env.env_id)
                return
        time.sleep(0.001)


def run_load(emu: Emulator, requests: list[Any], threads: int, crash: bool) -> dict[str, Any]:
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(requests)):
        todo.put(i)
    answers: dict[int, tuple[Any, str | None, float]] = {}
    throttled = 0
    lock = threading.Lock()
    halfway = threading.Event()
    killed: list[str] = []

    def worker() -> None:
        nonlocal throttled
        client = lambda_client(emu.endpoint_url)
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            req = requests[i]
            event = req if isinstance(req, dict) else {"inputs": {"x": req.tolist()}}
            body = json.dumps(event).encode()
            start = time.perf_counter()
            while True:
                try:
                    resp = client.invoke(FunctionName="inference", Payload=body)
                    break
                except client.exceptions.TooManyRequestsException:
                    with lock:
                        throttled += 1
                    time.sleep(0.02)
            payload = json.loads(resp["Payload"].read())
            with lock:
                answers[i] = (payload, resp.get("FunctionError"), time.perf_counter() - start)
                if len(answers) == len(requests) // 2:
                    halfway.set()

    crasher = threading.Thread(target=crash_one, args=(emu, halfway, killed), daemon=True)
    if crash:
        crasher.start()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    wall = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - wall
    return {"answers": answers, "throttled": throttled, "killed": killed, "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--environments", type=int, default=4)
    parser.add_argument("--ping-every", type=int, default=40)
    parser.add_argument("--no-crash", action="store_true", help="do not kill an environment")
    parser.add_argument("--out", type=Path, help="write the JSON result here too")
    args = parser.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="preheat-load-") as tmp, S3Server() as s3:
        work = Path(tmp)
        say("building the sample dense model and pushing it to the embedded S3 …")
        model_dir = make_sample_model("dense", work / "dense", seed=0)
        s3.client().create_bucket(Bucket="load")
        uri = push(
            model_dir, "s3://load/bench", name="dense", version="1", s3_client=s3.client()
        ).uri
        fn = FunctionConfig(
            name="inference",
            code_dir=assets.function_dir("inference"),
            handler="app.handler",
            memory_mb=1024,
            timeout_s=30.0,
            init_timeout_s=120.0,
            env={**s3.env(), c.ENV_MODEL_URI: uri, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        requests = make_requests(args.requests, args.ping_every, seed=2024)
        with Emulator([fn], max_concurrency=args.environments, workdir=work) as emu:
            say(f"{args.requests} requests from {args.threads} threads …")
            run = run_load(emu, requests, args.threads, crash=not args.no_crash)
            invocations = emu.stats("inference").invocations

        import tensorflow as tf

        serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
        answers = run["answers"]
        errors = [i for i, (p, err, _) in answers.items() if err or "statusCode" in p]
        mismatches = 0
        for i, (payload, _, _) in answers.items():
            req = requests[i]
            if i in errors or isinstance(req, dict):
                continue
            (expected,) = serve(x=tf.constant(req)).values()
            got = np.asarray(next(iter(payload["outputs"].values())))
            mismatches += not np.allclose(got, expected.numpy(), rtol=1e-5, atol=1e-6)
        crashed = [inv for inv in invocations if inv.outcome != "success"]
        latencies = [s * 1000 for i, (_, _, s) in answers.items() if i not in errors]
        # None when no request was answered: the JSON then says so instead of the run crashing.
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        result = {
            "requests": args.requests,
            "answered": len(answers),
            "invocations": len(invocations),
            "threads": args.threads,
            "environments_limit": args.environments,
            "environments_used": len({inv.env_id for inv in invocations}),
            "cold_starts": sum(inv.cold for inv in invocations),
            "errors": len(errors),
            "errors_outside_the_killed_environment": sum(
                inv.env_id not in run["killed"] for inv in crashed
            ),
            "mismatches": mismatches,
            "throttled_and_retried": run["throttled"],
            "p50_ms": None if p50 is None else round(p50, 2),
            "p99_ms": None if p99 is None else round(p99, 2),
            "wall_s": round(run["wall_s"], 2),
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    ok = (
        result["answered"] == args.requests
        and result["mismatches"] == 0
        and result["errors_outside_the_killed_environment"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
