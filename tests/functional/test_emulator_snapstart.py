"""SnapStart in the emulator, through awslambdaric's own path: before-snapshot hooks, the
parked /restore/next, after-restore hooks at the cold start, Restore Duration in REPORT."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.tools.emulator.config import RESTORE_TIMEOUT_S
from tests.fixtures.emulator import ROOT, lambda_client

Start = Callable[..., Emulator]
Make = Callable[..., FunctionConfig]
ClientFor = Callable[..., Any]
NAME = "snap-hooks"


def snap_function(
    make_function: Make, python312: str, marks: Path, **config: Any
) -> FunctionConfig:
    env = {"SNAP_MARKS": str(marks), **config.pop("env", {})}
    return make_function("snap_hooks", python=python312, snapstart=True, env=env, **config)


def marks_of(marks: Path, pid: int) -> list[str]:
    """The hooks that ran in process `pid`, in the order they ran."""
    found = [(float(p.read_text()), p.name.rsplit("-", 1)[0]) for p in marks.glob(f"*-{pid}")]
    return [name for _, name in sorted(found)]


def process_state(pid: int) -> str:
    # The third field of /proc/PID/stat: T is stopped (SIGSTOP).
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def wait_until(predicate: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def parked_pids(emu: Emulator) -> list[int]:
    return [e.pid for e in emu.environments(NAME) if e.state == "parked" and e.pid]


def test_before_snapshot_hooks_run_at_init_and_after_restore_hooks_at_the_cold_start(
    start_emulator: Start,
    make_function: Make,
    lambda_client_for: ClientFor,
    python312: str,
    tmp_path: Path,
) -> None:
    emu = start_emulator(snap_function(make_function, python312, tmp_path))
    assert any("does not snapshot memory" in n for n in emu.notices), emu.notices

    emu.prepare_snapshots(NAME)
    (pid,) = parked_pids(emu)[:1]
    # Parked on /restore/next: INIT and the before-snapshot hook ran, the after-restore
    # hook did not, and the process is stopped, as a snapshot does not run.
    assert marks_of(tmp_path, pid) == ["before_snapshot"]
    assert wait_until(lambda: process_state(pid) == "T", 5)  # SIGSTOP lands asynchronously

    response = lambda_client_for(emu).invoke(FunctionName=NAME, Payload=b"{}", LogType="Tail")
    answer = json.loads(response["Payload"].read())
    log = base64.b64decode(response["LogResult"]).decode()

    assert "FunctionError" not in response
    assert answer["pid"] == pid
    assert answer["events"] == ["init", "before_snapshot", "after_restore", "invoke"]
    assert answer["init_type"] == "snap-start"
    assert answer["log_stream"] is None  # Lambda sets none in SnapStart functions
    assert marks_of(tmp_path, pid) == ["before_snapshot", "after_restore"]
    order = ["RESTORE_START", "hook after_restore ran", "RESTORE_REPORT", "START RequestId"]
    positions = [log.index(marker) for marker in order]
    assert positions == sorted(positions), log
    report = log.rstrip("\n").splitlines()[-1]
    assert report.startswith("REPORT RequestId: ") and "Init Duration" not in report
    figures = dict(re.findall(r"([A-Z][\w ]+): ([\d.]+) ms", report))
    assert float(figures["Restore Duration"]) > 0
    assert int(figures["Billed Restore Duration"]) == math.ceil(float(figures["Restore Duration"]))
    # Lambda bills the restore inside Billed Duration.
    assert int(figures["Billed Duration"]) == math.ceil(float(figures["Duration"])) + int(
        figures["Billed Restore Duration"]
    )
    full_log = emu.log(next(e.env_id for e in emu.environments(NAME) if e.pid == pid))
    init = ["INIT_START", "hook before_snapshot ran", "INIT_REPORT Init Duration", "RESTORE_START"]
    positions = [full_log.index(marker) for marker in init]
    assert positions == sorted(positions), full_log

    warm = json.loads(lambda_client_for(emu).invoke(FunctionName=NAME)["Payload"].read())
    assert warm["pid"] == pid and warm["events"].count("after_restore") == 1
    cold, again = [i for i in emu.stats(NAME).invocations if i.env_id == warm_env(emu, pid)]
    assert cold.cold and cold.init_duration_ms is None and cold.restore_duration_ms
    assert f"Restore Duration: {cold.restore_duration_ms:.2f} ms" in report
    assert not again.cold and again.restore_duration_ms is None


def warm_env(emu: Emulator, pid: int) -> str:
    return next(e.env_id for e in emu.environments(NAME) if e.pid == pid)


def test_two_environments_restored_from_one_snapshot_pool_each_run_their_hooks(
    start_emulator: Start,
    make_function: Make,
    lambda_client_for: ClientFor,
    python312: str,
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    arrivals = tmp_path / "arrivals"
    marks.mkdir()
    arrivals.mkdir()
    emu = start_emulator(snap_function(make_function, python312, marks), snapshot_spares=2)
    emu.prepare_snapshots(NAME)
    assert wait_until(lambda: len(parked_pids(emu)) == 2)
    parked = set(parked_pids(emu))
    client = lambda_client_for(emu)

    # Each invoke holds its environment until both have arrived: two restores at once.
    event = json.dumps({"arrive": str(arrivals), "n": 2}).encode()
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda _: json.loads(
                    client.invoke(FunctionName=NAME, Payload=event)["Payload"].read()
                ),
                range(2),
            )
        )

    assert {a["pid"] for a in answers} == parked
    for answer in answers:
        assert answer["events"] == ["init", "before_snapshot", "after_restore", "invoke"]
        assert marks_of(marks, answer["pid"]) == ["before_snapshot", "after_restore"]
    restores = [i for i in emu.stats(NAME).invocations if i.cold]
    assert len(restores) == 2 and all(i.restore_duration_ms for i in restores)


def test_a_failing_before_snapshot_hook_fails_the_snapshot(
    start_emulator: Start, make_function: Make, python312: str, tmp_path: Path
) -> None:
    fn = snap_function(make_function, python312, tmp_path, env={"FAIL_BEFORE_SNAPSHOT": "1"})
    emu = start_emulator(fn)

    with pytest.raises(Exception) as failed:
        emu.prepare_snapshots(NAME)

    assert getattr(failed.value, "error_type", None) == "Runtime.BeforeSnapshotError"
    assert "the model's sockets would not close" in str(failed.value)
    (env,) = emu.environments(NAME)
    assert env.state == "dead" and env.end_reason == "init_error"
    assert "INIT_REPORT Init Duration: " in emu.log(
        env.env_id
    ) and "Status: error\tError Type: Runtime.BeforeSnapshotError" in emu.log(env.env_id)


def test_a_failing_after_restore_hook_fails_the_invoke_as_lambda_does(
    start_emulator: Start,
    make_function: Make,
    lambda_client_for: ClientFor,
    python312: str,
    tmp_path: Path,
) -> None:
    fn = snap_function(make_function, python312, tmp_path, env={"FAIL_AFTER_RESTORE": "1"})
    emu = start_emulator(fn)
    emu.prepare_snapshots(NAME)
    client = lambda_client_for(emu)

    with pytest.raises(client.exceptions.SnapStartException) as failed:
        client.invoke(FunctionName=NAME, Payload=b"{}")

    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Runtime.AfterRestoreError" in str(failed.value)
    assert "credentials could not be renewed" in str(failed.value)
    (record,) = emu.stats(NAME).invocations
    assert record.outcome == "restore_error" and record.error_type == "Runtime.AfterRestoreError"
    env = next(e for e in emu.environments(NAME) if e.env_id == record.env_id)
    assert env.end_reason == "restore_error"
    assert "RESTORE_REPORT Restore Duration: " in emu.log(env.env_id)
    assert "Status: error\tError Type: Runtime.AfterRestoreError" in emu.log(env.env_id)


def test_an_after_restore_hook_over_the_limit_is_cut(
    start_emulator: Start,
    make_function: Make,
    lambda_client_for: ClientFor,
    python312: str,
    tmp_path: Path,
) -> None:
    assert RESTORE_TIMEOUT_S == 10.0  # Lambda's limit; lowered here to keep the test short
    fn = snap_function(
        make_function,
        python312,
        tmp_path,
        env={"AFTER_RESTORE_SLEEP_S": "60"},
        restore_timeout_s=1.0,
    )
    emu = start_emulator(fn)
    emu.prepare_snapshots(NAME)
    (pid,) = parked_pids(emu)[:1]
    client = lambda_client_for(emu)

    started = time.monotonic()
    with pytest.raises(client.exceptions.SnapStartTimeoutException) as failed:
        client.invoke(FunctionName=NAME, Payload=b"{}")

    assert time.monotonic() - started < 5
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 408
    assert marks_of(tmp_path, pid) == ["before_snapshot", "after_restore"]
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10)
    (record,) = emu.stats(NAME).invocations
    assert record.outcome == "restore_error" and 1000 <= (record.restore_duration_ms or 0) < 5000
    env = next(e for e in emu.environments(NAME) if e.env_id == record.env_id)
    assert "RESTORE_REPORT Restore Duration: " in emu.log(env.env_id)
    assert "\tStatus: timeout" in emu.log(env.env_id)


def test_the_cli_snapstarts_latest_and_refuses_python_311_in_one_line(
    handlers_dir: Path, python312: str, tmp_path: Path
) -> None:
    spec = f"snap={handlers_dir}:snap_hooks.handler"
    base = [sys.executable, "-m", "preheat.tools.cli", "emulate", "--port", "0", "--function", spec]
    env = {**os.environ, "TMPDIR": str(tmp_path)}

    refused = subprocess.run(
        [*base, "--snapstart", "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert "SnapStart needs Python 3.12+" in line and version in line and "--python" in line

    # A relative --python, as the docs write it: environments start in their code
    # directory, so it must still name the same interpreter there.
    relative = os.path.relpath(python312, ROOT)
    proc = subprocess.Popen(
        [*base, "--json", "--quiet", "--snapstart", "snap", "--python", relative],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        answer = json.loads(
            lambda_client(started["endpoint_url"]).invoke(FunctionName="snap")["Payload"].read()
        )
        report = json.loads(proc.stdout.readline())["invocation"]
        assert answer["events"] == ["init", "before_snapshot", "after_restore", "invoke"]
        assert report["cold"] is True and report["restore_duration_ms"] > 0
        assert report["init_duration_ms"] is None
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert "does not snapshot memory" in stderr
