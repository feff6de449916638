"""`preheat emulate` as a user runs it: serve, invoke through boto3, Ctrl-C, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest

from tests.fixtures.emulator import lambda_client

UNAWARE_CLIENT = """
import boto3, sys
response = boto3.client("lambda").invoke(FunctionName="echo", Payload=b"{}")
sys.stdout.write(response["Payload"].read().decode())
"""
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def read_json_line(stream: IO[str], timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if line.strip():
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise AssertionError("no JSON line from preheat emulate")


def test_emulate_serves_until_interrupted_and_cleans_up(handlers_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "preheat.tools.cli",
            "emulate",
            "--json",
            "--port",
            "0",
            "--function",
            f"echo={handlers_dir}:echo.handler",
            "--env",
            "GREETING=hi",
            "--memory",
            "256",
            "--timeout",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        started = read_json_line(proc.stdout)
        assert started["functions"] == ["echo"]
        client = lambda_client(started["endpoint_url"])
        answer = json.loads(
            client.invoke(FunctionName="echo", Payload=b'{"x": 1}')["Payload"].read()
        )
        assert answer["event"] == {"x": 1}
        report = read_json_line(proc.stdout)["invocation"]
        assert report["cold"] is True and report["memory_size_mb"] == 256
        assert report["request_id"] == answer["request_id"]

        # Code that knows nothing of the emulator finds it through boto3's own variable.
        unaware = subprocess.run(
            [sys.executable, "-c", UNAWARE_CLIENT],
            env={**env, "AWS_ENDPOINT_URL_LAMBDA": started["endpoint_url"], **DUMMY_AWS},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert unaware.returncode == 0, unaware.stderr
        assert json.loads(unaware.stdout)["pid"] == answer["pid"]

        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(answer["pid"], 0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--function", "nonsense"], "use NAME=DIR:module.handler"),
        (["--function", "f=/no/such/dir:app.handler"], "use an existing directory"),
        (["--function", "f=.:app.handler", "--memory", "64"], "use 128 to 10240 MB"),
        (["--function", "f=.:app.handler", "--cpus", "one"], "use a core list such as"),
        (["--function", "f=.:app.handler", "--cpus", "4096"], "are not available here"),
        (["--function", "f=.:app.handler", "--init-cpu", "fast"], "invalid choice: 'fast'"),
    ],
)
def test_emulate_refuses_bad_input_in_one_line(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "preheat.tools.cli", "emulate", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("preheat emulate: error:")
    assert message in lines[0]


def test_emulate_help_explains_the_function_spec() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "preheat.tools.cli", "emulate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "NAME=DIR:module.handler" in done.stdout and "AWS_ENDPOINT_URL_LAMBDA" in done.stdout


def test_emulate_says_what_each_environment_runs_under(handlers_dir: Path, tmp_path: Path) -> None:
    from preheat.tools.emulator.cgroups import probe

    host = probe()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "preheat.tools.cli", "emulate", "--port", "0", "--quiet"),
            *("--function", f"echo={handlers_dir}:echo.handler", "--memory", "1769"),
            *("--init-cpu", "burst", "--cpus", "0"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = next(x for x in lines if x.strip().startswith("echo: "))
    assert "1769 MB: 1.00 vCPU (INIT 1.00, rule burst" in line
    assert "cores 0" in line
    if host.usable:
        assert "memory limit 1769 MB" in line and "confined (cgroup v" in line
    else:
        assert "not confined" in line
        assert err.count("environments run unconfined") == 1
    # One core cannot give INIT the burst's two vCPUs: said once, as a warning.
    assert err.count("preheat emulate: warning: function echo: 1769 MB gets 2.00 vCPUs") == 1
