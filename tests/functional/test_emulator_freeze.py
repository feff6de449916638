"""Environments are frozen between invocations, as Lambda freezes them, and still behave.

The `counter` handler starts a thread at INIT that counts into a file in the environment's
own temp dir (its /tmp); a frozen environment's count does not move while it is idle.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preheat.tools.cli import emulate as emulate_cli
from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.tools.emulator.environment import Environment
from preheat.tools.emulator.logbuffer import LogBuffer
from preheat.tools.emulator.sandbox import Sandbox
from preheat.tools.local.s3 import S3Server, env_for
from preheat.tools.push import push
from tests.fixtures.models import BuiltModel
from tests.reliability.faultproxy import FaultProxy

Start = Callable[..., Emulator]
Make = Callable[..., FunctionConfig]
ClientFor = Callable[..., Any]

FUNCTION_DIR = Path(__file__).resolve().parents[2] / "functions" / "inference"
# Long enough for an unfrozen counter (one tick per 10 ms) to move by dozens.
IDLE_S = 0.6


def invoke(client: Any, name: str, event: Any = None) -> dict[str, Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    body: dict[str, Any] = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return body


def state(pid: int) -> str:
    """The kernel's one-letter state of a process: T when stopped, S/R when running."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0]


def gone(pid: int) -> bool:
    try:
        return state(pid) == "Z"  # killed, and its parent has not reaped it yet
    except FileNotFoundError:
        return True


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def stopped(pid: int) -> bool:
    """Whether every thread of the process is stopped (they stop one by one)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            states.append((task / "stat").read_text().rpartition(")")[2].split()[0])
    return states != [] and set(states) == {"T"}


def frozen(*pids: int) -> bool:
    """Wait for every pid to be stopped: an answer comes back before the runtime's /next."""
    return wait_until(lambda: all(stopped(p) for p in pids), 5)


def read_count(path: Path) -> int:
    return int(path.read_text())


@pytest.mark.parametrize("freeze", [True, False])
def test_a_background_thread_makes_progress_only_while_the_environment_runs(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor, freeze: bool
) -> None:
    emu = start_emulator(make_function("counter", freeze=freeze))
    client = lambda_client_for(emu)

    first = invoke(client, "counter")
    counter = Path(first["path"])
    if freeze:
        assert frozen(first["pid"])
    else:
        time.sleep(0.1)  # as long as a freeze may take to come
    at_rest = read_count(counter)
    time.sleep(IDLE_S)
    after_rest = read_count(counter)
    second = invoke(client, "counter", {"hold": 0.3})

    if freeze:
        assert after_rest == at_rest  # not one tick while idle
        # What it counted from the first answer to the second is what it could count
        # during the second invoke (0.3 s) and the moments around the first /next.
        assert 5 <= second["count"] - first["count"] < 0.3 * 100 + 15
    else:
        assert state(first["pid"]) in "RS"
        assert after_rest - at_rest >= IDLE_S * 100 / 3  # a loaded machine still ticks
        assert second["count"] - first["count"] >= (IDLE_S + 0.3) * 100 / 3
    assert Path(emu.workdir or "") in counter.parents  # its own /tmp, not the machine's


def test_the_whole_environment_stops_child_processes_included(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("spawn_child"), make_function("counter"))
    client = lambda_client_for(emu)

    child = invoke(client, "spawn-child")["child"]
    runtime = emu.stats("spawn-child").environments[0].pid
    assert runtime is not None
    assert frozen(runtime, child)
    again = invoke(client, "spawn-child")["child"]  # runs while its first child is thawed
    assert frozen(runtime, child, again)

    # Stopped processes still die at once: reaping, a kill and shutdown need no thaw.
    (env,) = emu.stats("spawn-child").environments
    assert emu.kill_environment(env.env_id)
    assert wait_until(lambda: gone(runtime) and gone(child) and gone(again), 5)
    assert invoke(client, "spawn-child")["child"] > 0  # the next invoke cold-starts
    assert emu.stats("spawn-child").cold_starts == 2


def test_a_child_in_a_session_of_its_own_is_frozen_with_its_confined_environment(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("counter", env={"COUNTER_SETSID": "1"}, memory_mb=1769))
    if emu.notices:
        pytest.skip(f"needs cgroups: {emu.notices[0]}")
    client = lambda_client_for(emu)

    first = invoke(client, "counter")
    child_counter = Path(first["path"]).with_name("child-counter")
    assert child_counter.exists()
    # Out of the runtime's process group, it is found through the cgroup.
    assert os.getpgid(first["child"]) != os.getpgid(first["pid"])
    assert frozen(first["pid"], first["child"])
    before = read_count(child_counter)
    time.sleep(IDLE_S)
    assert read_count(child_counter) == before
    invoke(client, "counter", {"hold": 0.3})
    assert read_count(child_counter) > before


def test_a_frozen_environment_is_reaped_timed_out_and_shut_down(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(
        make_function("sleep", timeout_s=1.0),
        make_function("counter", idle_timeout_s=0.3),
        reap_interval_s=3600,  # reaped when the test says so
    )
    client = lambda_client_for(emu)

    # Idle past its timeout while frozen: the reaper kills it without thawing it first.
    pid = invoke(client, "counter")["pid"]
    assert frozen(pid)
    time.sleep(0.4)
    (reaped,) = emu.reap_idle()
    assert reaped == emu.stats("counter").environments[0].env_id
    assert wait_until(lambda: gone(pid), 5)

    # A timeout in an environment that was frozen before: thawed to run, then killed.
    invoke(client, "sleep", {"seconds": 0})
    (env,) = emu.stats("sleep").environments
    assert env.pid is not None and frozen(env.pid)
    response = client.invoke(FunctionName="sleep", Payload=b'{"seconds": 5}')
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Sandbox.Timedout"
    assert wait_until(lambda: env.pid is not None and gone(env.pid), 5)

    # Shutdown with a frozen environment in it: no wait on the stopped process.
    pid = invoke(client, "counter")["pid"]
    assert frozen(pid)
    started = time.monotonic()
    emu.close()
    assert time.monotonic() - started < 5
    assert gone(pid)


def test_each_invocation_keeps_its_whole_log_when_frozen_after_it(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    # More output than a pipe holds (64 KB): all of it must be read before END and
    # REPORT, from a runtime that is stopped right after answering.
    emu = start_emulator(make_function("log_lines"))
    client = lambda_client_for(emu)
    lines, message = 3000, "x" * 60
    for round_ in ("first", "second"):
        response = client.invoke(
            FunctionName="log-lines",
            Payload=json.dumps({"lines": lines, "message": f"{round_} {message}"}).encode(),
            LogType="Tail",
        )
        assert json.loads(response["Payload"].read()) == {"printed": lines}
        request_id = response["ResponseMetadata"]["RequestId"]
        (env,) = emu.stats("log-lines").environments
        assert env.pid is not None and frozen(env.pid)
        log = emu.log(env.env_id)
        start = log.index(f"START RequestId: {request_id}")
        end = log.index(f"END RequestId: {request_id}")
        printed = [ln for ln in log[start:end].splitlines() if ln.startswith(round_)]
        assert printed == [f"{round_} {message} {i}" for i in range(lines)]
        tail = base64.b64decode(response["LogResult"]).decode()
        assert f"{round_} {message} {lines - 1}\n" in tail
        assert tail.rstrip("\n").splitlines()[-1].startswith(f"REPORT RequestId: {request_id}")


def test_an_environment_frozen_before_runs_out_of_memory_as_lambda_reports_it(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("hog_memory", memory_mb=128, timeout_s=20))
    if emu.notices:
        pytest.skip(f"needs cgroups: {emu.notices[0]}")
    client = lambda_client_for(emu)

    pid = invoke(client, "hog-memory", {"mb": 16})["pid"]
    assert frozen(pid)
    response = client.invoke(FunctionName="hog-memory", Payload=b'{"mb": 512}')
    error = json.loads(response["Payload"].read())

    # Thawed by its event, it grows past the limit and the kernel's kill is told apart
    # from the emulator's own.
    assert error["errorType"] == "Runtime.OutOfMemory"
    assert wait_until(lambda: gone(pid), 5)
    assert emu.stats("hog-memory").environments[0].end_reason == "out_of_memory"
    assert invoke(client, "hog-memory", {"mb": 16})["pid"] != pid  # a cold start


def test_an_event_larger_than_the_socket_buffers_reaches_a_frozen_runtime(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    # The Runtime API writes the event to /next only after the runtime is thawed; written
    # to a stopped reader, 5 MB would fill the socket and hold the server's thread.
    emu = start_emulator(make_function("echo"))
    client = lambda_client_for(emu, read_timeout_s=20)
    invoke(client, "echo")
    (env,) = emu.stats("echo").environments
    assert env.pid is not None and frozen(env.pid)
    big = {"blob": "x" * (5 * 1024 * 1024)}
    started = time.monotonic()
    response = client.invoke(FunctionName="echo", Payload=json.dumps(big).encode())
    assert "FunctionError" not in response
    assert len(response["Payload"].read()) > 5 * 1024 * 1024
    assert time.monotonic() - started < 10


def test_an_init_with_no_event_waiting_is_frozen_when_it_ends(
    make_function: Make, tmp_path: Path
) -> None:
    # On-demand cold starts have their event waiting, so INIT runs straight into it; an
    # environment initialised ahead of any event (a pool, provisioned concurrency) is
    # frozen at its first /next, with whatever INIT left running.
    fn = make_function("counter")
    opt = tmp_path / "opt"
    opt.mkdir()
    env = Environment(fn, f"env-{uuid.uuid4().hex[:8]}", tmp_path / "env", opt, "127.0.0.1")
    sb = Sandbox("127.0.0.1", LogBuffer(env.env_id), freeze=fn.freeze)
    try:
        sb.start(
            [fn.python, "-m", "awslambdaric", fn.handler], env.variables(sb.address), fn.code_dir
        )
        assert wait_until(lambda: sb.ready_at is not None, 60), sb.log.text()
        assert sb.pid is not None and frozen(sb.pid)
        counter = env.tmp / "counter"
        assert wait_until(counter.exists, 1)
        before = read_count(counter)
        time.sleep(IDLE_S)
        assert read_count(counter) == before
    finally:
        sb.close()


@pytest.mark.slow
def test_the_model_is_fetched_during_init_before_the_first_freeze(
    dense_model: BuiltModel,
    s3_server: S3Server,
    start_emulator: Start,
    lambda_client_for: ClientFor,
) -> None:
    bucket = f"emulator-freeze-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    uri = str(
        push(
            dense_model.path,
            f"s3://{bucket}/store",
            name="dense",
            version="1",
            s3_client=s3_server.client(),
        ).uri
    )
    with FaultProxy(s3_server.endpoint_url) as proxy:  # counts every S3 request
        fn = FunctionConfig(
            name="inference",
            code_dir=FUNCTION_DIR,
            handler="app.handler",
            env={**env_for(proxy.endpoint_url), "PREHEAT_MODEL_URI": uri},
            memory_mb=1024,
            timeout_s=60,
            # A shared 2-core test machine importing TensorFlow may need longer than 10 s.
            init_timeout_s=120,
        )
        assert fn.freeze  # the default
        at_start: list[int] = []

        def sink(env_id: str, data: bytes) -> None:
            # START is written once INIT is over, as the event is handed to the runtime.
            if b"START RequestId" in data:
                at_start.append(proxy.count("/blobs/"))

        emu = start_emulator(fn, log_sink=sink)
        client = lambda_client_for(emu)
        x = np.random.default_rng(7).standard_normal((2, 4)).astype("float32")

        answer = invoke(client, "inference", {"inputs": {"x": x.tolist()}})
        gets_after_first = proxy.count("/blobs/")
        (env,) = emu.stats("inference").environments
        assert env.pid is not None and frozen(env.pid)
        time.sleep(IDLE_S)
        invoke(client, "inference", {"inputs": {"x": x.tolist()}})
        gets_after_second = proxy.count("/blobs/")

    (out_spec,) = dense_model.signature.outputs
    want = dense_model.reference({"x": x})[out_spec.name]
    np.testing.assert_allclose(answer["outputs"][out_spec.name], want, rtol=1e-6)
    log = emu.log(env.env_id)
    init_line = next(line for line in log.splitlines() if '"preheat init"' in line)
    report = json.loads(init_line)["init"]
    # INIT fetched the model from S3 and said so before the first event was handed over.
    assert report["bytes_by_tier"].get("s3", 0) > 0
    assert log.index('"preheat init"') < log.index("START RequestId")
    # Every chunk was fetched once, all of them before the first START: the first invoke
    # fetched nothing, and no fetch was left running into the first freeze.
    chunks = len(proxy.counts("/blobs/"))
    assert chunks > 0
    assert at_start[0] == gets_after_first == gets_after_second == chunks


@pytest.mark.parametrize(("flags", "freeze"), [([], True), (["--no-freeze"], False)])
def test_emulate_freezes_unless_told_not_to(
    handlers_dir: Path, flags: list[str], freeze: bool
) -> None:
    parser = argparse.ArgumentParser(prog="preheat emulate")
    emulate_cli.register(parser)
    args = parser.parse_args(["--function", f"echo={handlers_dir}:echo.handler", *flags])
    (spec,) = args.functions
    assert emulate_cli.parse_function(spec, args).freeze is freeze


def test_emulate_help_says_how_to_turn_freezing_off() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "preheat.tools.cli", "emulate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # as wrapped for any terminal width
    assert "--no-freeze" in text and "as Lambda always does" in text
