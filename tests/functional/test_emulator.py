"""The emulator's Lambda semantics, driven through boto3's `lambda` client."""

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

from preheat.tools.emulator import Emulator, FunctionConfig, InvocationRecord

Start = Callable[..., Emulator]
Make = Callable[..., FunctionConfig]
ClientFor = Callable[..., Any]


def invoke(client: Any, name: str, event: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
    body = response["Payload"].read()
    return response, json.loads(body) if body else None


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cold_then_warm_invoke_reuses_the_environment(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("echo"))
    client = lambda_client_for(emu)

    first, cold = invoke(client, "echo", {"n": 1})
    second, warm = invoke(client, "echo", {"n": 2})

    assert first["StatusCode"] == second["StatusCode"] == 200
    assert "FunctionError" not in first and "FunctionError" not in second
    assert first["ExecutedVersion"] == "$LATEST"
    assert cold["event"] == {"n": 1} and warm["event"] == {"n": 2}
    assert cold["first"] is True and warm["first"] is False
    assert cold["pid"] == warm["pid"]
    assert cold["log_stream"] == warm["log_stream"]
    assert 0 < warm["remaining_ms"] <= 5000
    stats = emu.stats("echo")
    assert stats.cold_starts == 1 and stats.warm_invocations == 1
    (env,) = stats.environments
    assert env.pid == cold["pid"] and env.state == "idle"
    assert cold["log_stream"].endswith(env.env_id)
    rec_cold, rec_warm = stats.invocations
    assert rec_cold.request_id == cold["request_id"]
    assert rec_cold.cold and rec_cold.init_duration_ms is not None and rec_cold.init_duration_ms > 0
    assert not rec_warm.cold and rec_warm.init_duration_ms is None
    assert env.init_duration_ms == rec_cold.init_duration_ms
    assert rec_warm.max_memory_used_mb > 0 and rec_warm.memory_size_mb == 128
    assert rec_warm.billed_duration_ms >= rec_warm.duration_ms


def test_concurrent_invokes_each_get_an_environment(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor, tmp_path: Path
) -> None:
    emu = start_emulator(make_function("gate"))
    client = lambda_client_for(emu)
    n = 3
    # Each invocation holds its environment until all n have arrived: only n environments
    # at once can get there, whatever the machine's speed.
    arrivals = tmp_path / "arrivals"
    arrivals.mkdir()
    event = {"arrive": str(arrivals), "n": n}

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda _: invoke(client, "gate", event)[1], range(n)))
    _, after = invoke(client, "gate")

    assert all(a["arrived"] == n and a["released"] for a in answers), answers
    assert after["pid"] in {a["pid"] for a in answers}
    stats = emu.stats("gate")
    assert len(stats.environments) == n
    assert stats.cold_starts == n and stats.warm_invocations == 1
    assert len({e.pid for e in stats.environments}) == n
    assert len({e.env_id for e in stats.environments}) == n


def test_an_idle_environment_is_reaped_and_the_next_invoke_cold_starts(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("echo", idle_timeout_s=0.3))
    client = lambda_client_for(emu)
    _, first = invoke(client, "echo")

    assert wait_until(lambda: emu.stats("echo").environments[0].state == "dead")
    assert emu.stats("echo").environments[0].end_reason == "reaped"
    assert wait_until(lambda: pid_gone(first["pid"]))
    _, again = invoke(client, "echo")
    assert again["first"] is True and again["pid"] != first["pid"]
    assert emu.stats("echo").cold_starts == 2


def test_reap_idle_on_demand_follows_the_clock(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    now = [1000.0]
    # The background reaper is slowed right down so that only this test reaps.
    emu = start_emulator(
        make_function("echo", idle_timeout_s=60), clock=lambda: now[0], reap_interval_s=3600
    )
    client = lambda_client_for(emu)
    invoke(client, "echo")
    env_id = emu.stats("echo").environments[0].env_id

    now[0] += 59
    assert emu.reap_idle() == []
    now[0] += 2
    assert emu.reap_idle() == [env_id]
    assert emu.stats("echo").environments[0].end_reason == "reaped"


def test_handler_exception_is_unhandled_and_keeps_the_environment(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("crash"))
    client = lambda_client_for(emu)

    response, error = invoke(client, "crash", {"crash": "raise", "value": 7})
    _, ok = invoke(client, "crash")

    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "bad input: 7"
    assert any("crash.py" in line for line in error["stackTrace"])
    assert set(ok) == {"pid"}
    stats = emu.stats("crash")
    assert stats.cold_starts == 1 and len(stats.environments) == 1
    assert stats.invocations[0].outcome == "error" and stats.invocations[1].outcome == "success"


def test_event_invocation_returns_202_and_runs_the_handler(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor, tmp_path: Path
) -> None:
    emu = start_emulator(make_function("write_file"))
    client = lambda_client_for(emu)
    target = tmp_path / "out.txt"

    response, body = invoke(
        client, "write-file", {"path": str(target), "text": "ran"}, InvocationType="Event"
    )

    assert response["StatusCode"] == 202 and body is None
    assert wait_until(target.exists)
    assert target.read_text() == "ran"
    assert wait_until(lambda: len(emu.stats("write-file").invocations) == 1)
    assert emu.stats("write-file").invocations[0].invocation_type == "Event"


def test_dry_run_returns_204_and_starts_nothing(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("echo"))
    client = lambda_client_for(emu)

    response = client.invoke(FunctionName="echo", InvocationType="DryRun")

    assert response["StatusCode"] == 204
    assert emu.stats("echo").environments == ()


def test_log_tail_ends_with_the_report_line(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("log_lines"))
    client = lambda_client_for(emu)

    cold, _ = invoke(client, "log-lines", {"lines": 3, "message": "hello"}, LogType="Tail")
    warm, _ = invoke(client, "log-lines", {"lines": 2000, "message": "x" * 20}, LogType="Tail")
    plain, _ = invoke(client, "log-lines")

    cold_log = base64.b64decode(cold["LogResult"]).decode()
    warm_log = base64.b64decode(warm["LogResult"])
    assert "hello 0\n" in cold_log and "hello 2\n" in cold_log
    last = cold_log.rstrip("\n").splitlines()[-1]
    assert last.startswith("REPORT RequestId: ") and "Init Duration: " in last
    assert cold_log.index("START RequestId") < cold_log.index("hello 0")
    assert len(warm_log) <= 4096
    warm_last = warm_log.decode().rstrip("\n").splitlines()[-1]
    assert warm_last.startswith("REPORT RequestId: ") and "Init Duration" not in warm_last
    assert f"{'x' * 20} 1999" in warm_log.decode()
    assert "LogResult" not in plain


def test_environment_variables_tmp_and_layers(
    start_emulator: Start,
    make_function: Make,
    lambda_client_for: ClientFor,
    tmp_path: Path,
) -> None:
    base, override = tmp_path / "layer1", tmp_path / "layer2"
    (base / "python").mkdir(parents=True)
    (base / "python" / "shared.txt").write_text("from layer 1")
    (base / "python" / "only1.txt").write_text("one")
    (override / "python").mkdir(parents=True)
    (override / "python" / "shared.txt").write_text("from layer 2")
    (override / "preheat" / "models").mkdir(parents=True)
    (override / "preheat" / "models" / "m.txt").write_text("model")
    fn = make_function("env_dump", memory_mb=256, env={"GREETING": "hi"}, layers=(base, override))
    emu = start_emulator(fn)
    client = lambda_client_for(emu)
    event: dict[str, Any] = {
        "read": ["python/shared.txt", "python/only1.txt", "preheat/models/m.txt"]
    }
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()

    arrivals = tmp_path / "arrivals"
    arrivals.mkdir()
    event.update({"arrive": str(arrivals), "n": 2})  # two environments at once

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(
            lambda _: invoke(client, "env-dump", event, ClientContext=context)[1], range(2)
        )

    env = a["environ"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "env-dump" == a["function_name"]
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256" and a["memory_limit_in_mb"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["_HANDLER"] == "env_dump.handler"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/env-dump"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"]
    assert env["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python")
    assert env["GREETING"] == "hi"
    assert Path(env["LAMBDA_TASK_ROOT"]) == Path(a["cwd"])
    assert a["invoked_function_arn"].endswith(":function:env-dump")
    assert a["client_context"] == {"k": "v"}
    # Each environment has its own temp dir, with the disk cache inside it.
    assert a["tmp"] != b["tmp"]
    assert Path(env["PREHEAT_CACHE_DIR"]).parent == Path(a["tmp"])
    # Layers merge under the opt path, later layers winning; the read-only tier looks there.
    assert a["files"] == {
        "python/shared.txt": "from layer 2",
        "python/only1.txt": "one",
        "preheat/models/m.txt": "model",
    }
    assert env["PREHEAT_LOCAL_PATHS"] == str(Path(env["PREHEAT_OPT_DIR"]) / "preheat" / "models")
    assert str(Path(env["PREHEAT_OPT_DIR"]) / "python") in a["sys_path"]


def test_qualifier_and_arn_are_accepted(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("echo"))
    client = lambda_client_for(emu)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:echo"

    by_qualifier, _ = invoke(client, "echo", Qualifier="$LATEST")
    by_arn, answer = invoke(client, arn)

    assert by_qualifier["StatusCode"] == by_arn["StatusCode"] == 200
    assert answer["first"] is False


def test_close_kills_every_process_and_removes_every_temp_dir(
    make_function: Make, lambda_client_for: ClientFor, tmp_path: Path
) -> None:
    pids: list[int] = []
    with (
        pytest.raises(KeyboardInterrupt),
        Emulator([make_function("sleep")], workdir=tmp_path) as emu,
    ):
        client = lambda_client_for(emu)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: invoke(client, "sleep", {"seconds": 0.3}), range(2)))
        pids = [e.pid for e in emu.stats("sleep").environments if e.pid]
        workdir = emu.workdir
        raise KeyboardInterrupt

    assert len(pids) == 2
    assert wait_until(lambda: all(pid_gone(p) for p in pids), 5)
    assert workdir is not None and not workdir.exists()
    assert list(tmp_path.iterdir()) == []
    assert all(e.state == "dead" for e in emu.stats("sleep").environments)


def test_a_killed_environment_takes_its_child_processes_with_it(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("spawn_child"))
    client = lambda_client_for(emu)

    _, answer = invoke(client, "spawn-child")
    child = answer["child"]
    assert not pid_gone(child)
    (env,) = emu.stats("spawn-child").environments
    emu.kill_environment(env.env_id)

    assert wait_until(lambda: pid_gone(child), 5)


def test_closing_mid_invoke_answers_the_caller_instead_of_hanging(
    make_function: Make, lambda_client_for: ClientFor, tmp_path: Path
) -> None:
    emu = Emulator([make_function("sleep", timeout_s=60)], workdir=tmp_path).start()
    client = lambda_client_for(emu)
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(invoke, client, "sleep", {"seconds": 50})
            assert wait_until(
                lambda: (
                    emu.stats("sleep").environments[:1] != ()
                    and emu.stats("sleep").environments[0].state == "busy"
                )
            )
            pid = emu.stats("sleep").environments[0].pid
            emu.close()
            response, error = pending.result(timeout=20)
    finally:
        emu.close()

    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("signal: killed")
    assert pid is not None and wait_until(lambda: pid_gone(pid), 5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("freeze", [True, False])
def test_a_frozen_environment_runs_nothing_between_invocations(
    start_emulator: Start,
    make_function: Make,
    lambda_client_for: ClientFor,
    tmp_path: Path,
    freeze: bool,
) -> None:
    emu = start_emulator(make_function("ticker", freeze=freeze))
    client = lambda_client_for(emu)
    ticks = tmp_path / "ticks"
    event = {"path": str(ticks), "hold": 0.2}

    invoke(client, "ticker", event)
    time.sleep(0.2)  # the runtime is back in /next by now
    before = ticks.stat().st_size
    time.sleep(0.5)
    between = ticks.stat().st_size
    invoke(client, "ticker", event)
    after = ticks.stat().st_size

    if freeze:
        assert between == before  # the background thread was stopped with its environment
    else:
        assert between > before
    assert after > between  # and it runs again during the next invocation


def test_invocations_are_reported_to_an_observer_whose_failures_do_not_matter(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    seen: list[InvocationRecord] = []

    def observe(record: InvocationRecord) -> None:
        seen.append(record)
        raise BrokenPipeError("stdout went away")

    emu = start_emulator(make_function("echo"), on_invocation=observe)
    client = lambda_client_for(emu)

    first, _ = invoke(client, "echo")
    second, _ = invoke(client, "echo")

    assert first["StatusCode"] == second["StatusCode"] == 200
    assert [r.cold for r in seen] == [True, False]
    assert seen == list(emu.stats("echo").invocations)
