"""The inference function on the local Lambda under load, and what its logs give away.

A real (small) dense model sits in S3; the function runs in awslambdaric environments of
the emulator, invoked through boto3's `lambda` client. References are computed in-process.
"""

from __future__ import annotations

import os
import queue
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from preheat import constants as c
from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push
from tests.fixtures.emulator import lambda_client
from tests.fixtures.models import BuiltModel
from tests.reliability.conftest import BUCKET, PREFIX

pytestmark = pytest.mark.slow

INFERENCE = Path(__file__).resolve().parents[2] / "functions" / "inference"
ENVIRONMENTS = 4
THREADS = 8
REQUESTS = 2000
PING_EVERY = 40
CRASH_AFTER = REQUESTS // 2
# Recognisable values that must never reach a log line.
SECRET = "sk-preheat-test-9f3c1e7a5b2d4f60"
SESSION_TOKEN = "session-token-marker-0c4e8a2f6b1d"
BEARER = "Bearer bearer-marker-73a9e1c5d2f8"
PAYLOAD_MARKER = "payload-marker-" + "5e7b9d1f3a" * 4


@dataclass
class Function:
    emu: Emulator
    client: Any
    model: BuiltModel


@pytest.fixture(scope="module")
def function(
    moto: S3Server, direct: Any, dense_model: BuiltModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Function]:
    pushed = push(
        dense_model.path, f"s3://{BUCKET}/{PREFIX}", name="dense", version="1", s3_client=direct
    )
    config = FunctionConfig(
        name="inference",
        code_dir=INFERENCE,
        handler="app.handler",
        memory_mb=1024,
        timeout_s=30.0,
        # TensorFlow's import on a busy 2-core machine can outlast Lambda's 10 s; this suite
        # is about correctness, the benchmark about time.
        init_timeout_s=120.0,
        env={
            **moto.env(),
            c.ENV_MODEL_URI: pushed.uri,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PREHEAT_TEST_API_KEY": SECRET,
            "AWS_SESSION_TOKEN": SESSION_TOKEN,
        },
    )
    emu = Emulator(
        [config], max_concurrency=ENVIRONMENTS, workdir=tmp_path_factory.mktemp("load")
    ).start()
    try:
        yield Function(emu, lambda_client(emu.endpoint_url), dense_model)
    finally:
        emu.close()


def invoke(client: Any, event: Any) -> tuple[Any, str | None]:
    """(payload, FunctionError) of one synchronous invoke."""
    resp = client.invoke(FunctionName="inference", Payload=orjson.dumps(event))
    return orjson.loads(resp["Payload"].read()), resp.get("FunctionError")


def all_logs(emu: Emulator) -> str:
    return "\n".join(emu.log(e.env_id) for e in emu.environments("inference"))


# ---------------------------------------------------------------------------- logs


def test_no_secret_or_payload_in_the_logs_at_the_default_level(function: Function) -> None:
    x = [[1234.5678, -8765.4321, 1111.2222, 3333.4444]]
    body = orjson.dumps({"inputs": {"x": x}}).decode()
    events: list[Any] = [
        {"inputs": {"x": x}},
        {"inputs": {"x": PAYLOAD_MARKER}},
        {"inputs": {"x": [[PAYLOAD_MARKER, 1, 2, 3]]}},
        {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/",
            "headers": {"authorization": BEARER, "content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/"}},
            "body": body,
            "isBase64Encoded": False,
        },
        {"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "body": "{" + BEARER},
    ]
    answers = [invoke(function.client, e) for e in events]
    assert answers[0][1] is None and "outputs" in answers[0][0]
    assert answers[1][0]["statusCode"] == 400 and answers[2][0]["statusCode"] == 400

    logs = all_logs(function.emu)
    assert "preheat init" in logs, "not the function's log"
    for marker in (SECRET, SESSION_TOKEN, BEARER, "bearer-marker", PAYLOAD_MARKER, body):
        assert marker not in logs, f"{marker[:24]}… reached the log"
    assert "1234.5678" not in logs and "8765.4321" not in logs


# ---------------------------------------------------------------------------- load


@dataclass
class Outcome:
    index: int
    payload: Any
    error: str | None
    seconds: float
    throttled: int


def _requests(seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for i in range(REQUESTS):
        if i % PING_EVERY == PING_EVERY - 1:
            out.append({"preheat": {"warm": {}}})
        else:
            rows = int(rng.integers(1, 4))
            out.append(rng.standard_normal((rows, 4)).astype("float32"))
    return out


def _crash_one(emu: Emulator, started: threading.Event, killed: list[str]) -> None:
    """SIGKILL the process of an environment caught in the middle of an invocation."""
    started.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        busy = [e for e in emu.environments("inference") if e.state == "busy" and e.pid]
        if busy:
            victim = busy[0]
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.env_id)
            return
        time.sleep(0.001)


def test_load_every_request_answered_once_and_correctly(function: Function) -> None:
    emu, model = function.emu, function.model
    requests = _requests(seed=2024)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(REQUESTS):
        todo.put(i)
    results: list[Outcome] = []
    lock = threading.Lock()
    halfway = threading.Event()
    killed: list[str] = []
    before = len(emu.stats("inference").invocations)

    def worker() -> None:
        client = lambda_client(emu.endpoint_url)
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            req = requests[i]
            event = req if isinstance(req, dict) else {"inputs": {"x": req.tolist()}}
            throttled = 0
            start = time.perf_counter()
            while True:
                try:
                    payload, error = invoke(client, event)
                    break
                except client.exceptions.TooManyRequestsException:
                    # The concurrency limit: not an invocation, so asking again is safe.
                    throttled += 1
                    time.sleep(0.02)
            with lock:
                results.append(Outcome(i, payload, error, time.perf_counter() - start, throttled))
                if len(results) == CRASH_AFTER:
                    halfway.set()

    crasher = threading.Thread(target=_crash_one, args=(emu, halfway, killed), daemon=True)
    crasher.start()
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    crasher.join(5)

    # Exactly one answer per request, and exactly one invocation behind each.
    assert sorted(r.index for r in results) == list(range(REQUESTS))
    stats = emu.stats("inference")
    invocations = stats.invocations[before:]
    assert len(invocations) == REQUESTS

    errors = [r for r in results if r.error is not None or "statusCode" in r.payload]
    failed = [inv for inv in invocations if inv.outcome != "success"]
    assert killed, "no environment was caught mid-invocation"
    assert len(errors) == len(failed) <= 1
    assert all(inv.env_id == killed[0] for inv in failed)

    # Every prediction equals the model's own output for its input.
    predictions = [
        r for r in results if r not in errors and not isinstance(requests[r.index], dict)
    ]
    batch = np.concatenate([requests[r.index] for r in predictions])
    expected = model.reference({"x": batch})["output_0"]
    got = np.concatenate([np.asarray(r.payload["outputs"]["output_0"]) for r in predictions])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    pings = [r for r in results if isinstance(requests[r.index], dict) and r not in errors]
    assert pings and all(r.payload[c.WARM_EVENT_KEY]["warm"]["model_loaded"] is True for r in pings)

    latencies = sorted(r.seconds * 1000 for r in results if r not in errors)
    p50 = statistics.median(latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    envs = Counter(inv.env_id for inv in invocations)
    print(
        f"\nload: {REQUESTS} requests ({len(pings)} warm pings) from {THREADS} threads in "
        f"{wall:.1f} s; errors {len(errors)} (the killed invocation: {len(failed)}); "
        f"throttled and retried {sum(r.throttled for r in results)}; "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; environments used {len(envs)}, "
        f"cold starts {sum(inv.cold for inv in invocations)}"
    )
