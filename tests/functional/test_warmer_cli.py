"""`preheat prewarm` as a user runs it, against the local Lambda."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from preheat.tools.emulator import Emulator, FunctionConfig

HANDLERS = Path(__file__).resolve().parent / "handlers_warm"


@pytest.fixture
def emulator(
    start_emulator: Callable[..., Emulator], make_function: Callable[..., FunctionConfig]
) -> Emulator:
    warm = make_function("warm_app", name="warm", code_dir=HANDLERS, handler="warm_app.handler")
    tight = make_function(
        "warm_app",
        name="tight",
        code_dir=HANDLERS,
        handler="warm_app.handler",
        reserved_concurrency=2,
    )
    emu = start_emulator(warm, tight)
    # `prewarm --qualifier live` needs the alias, as on Lambda: version 1 behind it.
    emu.versions("warm").create_alias("live", emu.publish_version("warm").number)
    return emu


def prewarm(emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_LAMBDA": emu.endpoint_url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    return subprocess.run(
        [sys.executable, "-m", "preheat.tools.cli", "prewarm", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_prewarm_warms_and_prints_a_table(emulator: Emulator) -> None:
    done = prewarm(emulator, "--function", "warm", "--qualifier", "live", "--concurrency", "3")
    assert done.returncode == 0, done.stderr
    assert "warm:live: 3 of 3 environments warm" in done.stdout
    assert "round" in done.stdout.splitlines()[0]
    assert "round 1:" in done.stderr  # the progress line
    assert len(emulator.stats("warm").live_environments) == 3


def test_prewarm_json(emulator: Emulator) -> None:
    done = prewarm(emulator, "--function", "warm", "--concurrency", "2", "--json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = orjson.loads(done.stdout)
    assert data["warm"] == 2 and data["ok"] is True and data["shortfall"] == 0
    assert len(set(data["environment_ids"])) == 2


def test_prewarm_shortfall_exits_non_zero_with_the_reason(emulator: Emulator) -> None:
    done = prewarm(emulator, "--function", "tight", "--concurrency", "4", "--max-rounds", "5")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("preheat prewarm: error: 2 of 4 environments short: throttled")
    assert "tight: 2 of 4 environments warm" in done.stdout


def test_prewarm_missing_function(emulator: Emulator) -> None:
    done = prewarm(emulator, "--function", "nope", "--concurrency", "1")
    assert done.returncode == 1
    assert "not found" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--function", "warm", "--concurrency", "0"),
        ("--function", "warm", "--concurrency", "many"),
        ("--function", "warm", "--concurrency", "2", "--hold-ms", "-5"),
        (
            "--concurrency",
            "2",
        ),
        ("--function", "warm", "--concurrency", "5000"),
        ("--function", "warm", "--concurrency", "2", "--timeout", "0"),
    ],
)
def test_prewarm_bad_arguments_fail_in_one_line(emulator: Emulator, args: tuple[str, ...]) -> None:
    done = prewarm(emulator, *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "error:" in done.stderr.strip().splitlines()[-1]
    assert emulator.stats("warm").invocations == ()
