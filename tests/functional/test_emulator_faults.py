"""The emulator's failure paths: INIT errors and timeouts, timeouts, crashes, AWS error shapes."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from preheat.tools.emulator import Emulator, FunctionConfig

Start = Callable[..., Emulator]
Make = Callable[..., FunctionConfig]
ClientFor = Callable[..., Any]


def invoke(client: Any, name: str, event: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
    body = response["Payload"].read()
    return response, json.loads(body) if body else None


def pid_gone(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def wait_busy(emu: Emulator, name: str, timeout_s: float = 20.0) -> bool:
    """True once an environment of `name` is running an invocation."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(e.state == "busy" for e in emu.stats(name).environments):
            return True
        time.sleep(0.01)
    return False


def aws_error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, dict[str, Any]]:
    response: dict[str, Any] = dict(exc.value.response)
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response,
    )


def test_init_error_is_unhandled_and_the_next_invoke_cold_starts(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("raise_in_init"))
    client = lambda_client_for(emu)

    response, error = invoke(client, "raise-in-init", LogType="Tail")
    invoke(client, "raise-in-init")

    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "RuntimeError"
    assert "model file missing" in error["errorMessage"]
    log = base64.b64decode(response["LogResult"]).decode()
    assert "Phase: init\tStatus: error\tError Type: RuntimeError" in log
    assert "model file missing" in log and "REPORT RequestId" in log
    stats = emu.stats("raise-in-init")
    assert len(stats.environments) == 2 and stats.cold_starts == 2
    assert all(e.end_reason == "init_error" for e in stats.environments)
    assert all(i.outcome == "init_error" and i.init_duration_ms is None for i in stats.invocations)


def test_timeout_kills_the_environment_and_replaces_it(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("sleep", timeout_s=1))
    client = lambda_client_for(emu)

    response, error = invoke(client, "sleep", {"seconds": 30}, LogType="Tail")
    _, after = invoke(client, "sleep", {"seconds": 0})

    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert "Task timed out after 1.00 seconds" in base64.b64decode(response["LogResult"]).decode()
    assert after == {"slept": 0}
    stats = emu.stats("sleep")
    first, second = stats.environments
    assert first.end_reason == "timeout" and first.pid is not None and pid_gone(first.pid)
    assert second.state == "idle" and stats.cold_starts == 2
    assert stats.invocations[0].outcome == "timeout"
    assert 1000 <= stats.invocations[0].duration_ms < 5000


@pytest.mark.parametrize(("how", "status"), [("exit", "exit status 3"), ("kill", "signal: killed")])
def test_a_crash_mid_invoke_is_an_exit_error_and_the_environment_is_discarded(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor, how: str, status: str
) -> None:
    emu = start_emulator(make_function("crash"))
    client = lambda_client_for(emu)
    _, before = invoke(client, "crash")

    response, error = invoke(client, "crash", {"crash": how})
    _, after = invoke(client, "crash")

    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith(f"Runtime exited with error: {status}")
    assert after["pid"] != before["pid"]
    stats = emu.stats("crash")
    assert [e.end_reason for e in stats.environments] == ["crash", None]
    assert stats.cold_starts == 2


def test_an_event_sent_to_a_runtime_that_is_exiting_runs_in_a_new_environment(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    # The runtime answers, then exits instead of asking for the next event: the next
    # invoke, handed to it while it lingers, must not fail; Lambda runs it elsewhere.
    emu = start_emulator(make_function("answer_then_exit"))
    client = lambda_client_for(emu)
    response, answered = invoke(client, "answer-then-exit", {"exit": True, "linger_s": 1.0})
    response2, after = invoke(client, "answer-then-exit")

    assert answered["answered"] is True and "FunctionError" not in response
    assert "FunctionError" not in response2
    assert after["pid"] != answered["pid"]
    stats = emu.stats("answer-then-exit")
    assert [e.end_reason for e in stats.environments] == ["crash", None]
    assert [i.outcome for i in stats.invocations] == ["success", "success"]
    assert stats.cold_starts == 2


def test_a_killed_idle_environment_is_replaced(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("echo"))
    client = lambda_client_for(emu)
    _, before = invoke(client, "echo")
    env_id = emu.stats("echo").environments[0].env_id

    assert emu.kill_environment(env_id) is True
    _, after = invoke(client, "echo")

    assert pid_gone(before["pid"])
    assert after["first"] is True and after["pid"] != before["pid"]
    assert emu.stats("echo").environments[0].end_reason == "killed"
    assert emu.kill_environment("no-such-env") is False


def test_init_timeout_is_retried_once_inside_the_first_invoke(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    # The first INIT must reach the handler's import (which leaves the retry marker) before
    # its limit: 2 s leaves room for the interpreter and the runtime client on a busy machine,
    # where 0.5 s did not always.
    fn = make_function(
        "slow_init",
        init_timeout_s=2.0,
        timeout_s=10,
        env={"INIT_SLEEP_S": "30", "RETRY_SLEEP_S": "0"},
    )
    emu = start_emulator(fn)
    client = lambda_client_for(emu)

    response, answer = invoke(client, "slow-init", LogType="Tail")

    assert "FunctionError" not in response and answer["retried_init"] is True
    log = base64.b64decode(response["LogResult"]).decode()
    assert "Phase: init\tStatus: timeout" in log
    (rec,) = emu.stats("slow-init").invocations
    # The retried INIT is part of the invoke's Duration, with no Init Duration of its own.
    assert rec.cold and rec.init_duration_ms is None and rec.outcome == "success"
    assert "Init Duration: " not in log.rstrip("\n").splitlines()[-1]
    (env,) = emu.stats("slow-init").environments
    assert env.pid == answer["pid"]


def test_an_init_that_times_out_twice_fails_the_invoke_with_a_timeout(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    fn = make_function(
        "slow_init",
        init_timeout_s=0.3,
        timeout_s=0.5,
        env={"INIT_SLEEP_S": "30", "RETRY_SLEEP_S": "30"},
    )
    emu = start_emulator(fn)
    client = lambda_client_for(emu)

    response, error = invoke(client, "slow-init")

    assert response["FunctionError"] == "Unhandled"
    assert error["errorMessage"].endswith("Task timed out after 0.50 seconds")
    (env,) = emu.stats("slow-init").environments
    assert env.end_reason == "timeout" and env.pid is not None and pid_gone(env.pid)


def test_the_reserved_concurrency_limit_throttles_with_429(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor, tmp_path: Path
) -> None:
    emu = start_emulator(make_function("gate", reserved_concurrency=1))
    client = lambda_client_for(emu)
    release = tmp_path / "release"

    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(invoke, client, "gate", {"wait_for": str(release)})
        assert wait_busy(emu, "gate")
        with pytest.raises(ClientError) as exc:
            invoke(client, "gate")
        release.touch()
        assert busy.result()[1]["released"] is True

    status, code, response = aws_error(exc)
    assert (status, code) == (429, "TooManyRequestsException")
    assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert emu.stats("gate").throttles == 1
    assert invoke(client, "gate")[1]["released"] is True


def test_the_global_concurrency_limit_throttles_with_429(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor, tmp_path: Path
) -> None:
    emu = start_emulator(make_function("gate"), make_function("echo"), max_concurrency=1)
    client = lambda_client_for(emu)
    release = tmp_path / "release"

    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(invoke, client, "gate", {"wait_for": str(release)})
        assert wait_busy(emu, "gate")
        with pytest.raises(ClientError) as exc:
            invoke(client, "echo")
        release.touch()
        busy.result()

    status, code, response = aws_error(exc)
    assert (status, code) == (429, "TooManyRequestsException")
    assert response["Reason"] == "ConcurrentInvocationLimitExceeded"


def test_unknown_function_is_404(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("echo"))
    client = lambda_client_for(emu)

    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        invoke(client, "nope")

    status, _, response = aws_error(exc)
    assert status == 404
    assert "function:nope" in response["Error"]["Message"]


def test_a_payload_over_6_mb_is_413(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("echo"))
    client = lambda_client_for(emu)
    payload = json.dumps({"blob": "x" * (6 * 1024 * 1024)}).encode()

    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName="echo", Payload=payload)

    status, code, response = aws_error(exc)
    assert (status, code) == (413, "RequestEntityTooLargeException")
    assert "6291456 bytes" in response["Error"]["Message"]
    assert emu.stats("echo").environments == ()
    # The connection stays usable after the refusal.
    assert invoke(client, "echo")[0]["StatusCode"] == 200


def test_a_payload_that_is_not_json_is_400(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("echo"))
    client = lambda_client_for(emu)

    with pytest.raises(client.exceptions.InvalidRequestContentException) as exc:
        client.invoke(FunctionName="echo", Payload=b"{not json")

    assert aws_error(exc)[0] == 400
    assert emu.stats("echo").environments == ()


def test_a_missing_python_is_an_exit_error_not_a_hang(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("echo", python="/nonexistent/python3"))
    client = lambda_client_for(emu)

    response, error = invoke(client, "echo")

    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert "could not start /nonexistent/python3" in error["errorMessage"]


def test_a_response_over_6_mb_is_a_function_error(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("big_response"))
    client = lambda_client_for(emu)

    response, error = invoke(client, "big-response")

    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    assert emu.stats("big-response").invocations[0].outcome == "error"


def test_an_event_invoke_waits_for_free_concurrency_instead_of_failing(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor, tmp_path: Path
) -> None:
    emu = start_emulator(make_function("gate"), make_function("write_file"), max_concurrency=1)
    client = lambda_client_for(emu)
    target, release = tmp_path / "later.txt", tmp_path / "release"

    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(invoke, client, "gate", {"wait_for": str(release)})
        assert wait_busy(emu, "gate")
        queued, _ = invoke(
            client, "write-file", {"path": str(target), "text": "late"}, InvocationType="Event"
        )
        assert queued["StatusCode"] == 202
        assert not target.exists()
        release.touch()
        busy.result()

    deadline = time.monotonic() + 10
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert target.read_text() == "late"
