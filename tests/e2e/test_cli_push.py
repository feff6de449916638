"""`preheat push` as a user runs it: a subprocess, the embedded S3 through the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

MB = 1024 * 1024


def preheat(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preheat.tools.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def dest(s3_client: Any) -> str:
    bucket = f"cli-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    return f"s3://{bucket}/models-root"


def test_push_json_then_again_skips_every_byte(
    s3_env: dict[str, str], dest: str, artifact: Callable[..., Path], s3_client: Any
) -> None:
    src = artifact(1, {"saved_model.pb": 1000, "variables/data": 2 * MB + 7})
    first = preheat("push", str(src), dest, "--name", "m", "--version", "1", "--json", env=s3_env)
    assert first.returncode == 0, first.stderr
    out = orjson.loads(first.stdout)
    assert out["uri"] == f"{dest}/models/m/1"
    assert out["uploaded_bytes"] == 2 * MB + 1007 and out["skipped_bytes"] == 0
    assert out["chunks_uploaded"] == 4
    second = preheat(
        "push", str(src), dest, "--name", "m", "--version", "1", "--alias", "prod", env=s3_env
    )
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert lines[0] == f"{dest}/models/m/1"
    assert "uploaded 0 B in 0 chunks, skipped 2.1 MB" in lines[1]
    assert f"{dest}/models/m@prod -> 1" in second.stdout
    bucket, prefix = dest[5:].split("/", 1)
    alias = s3_client.get_object(Bucket=bucket, Key=f"{prefix}/models/m/aliases/prod")
    assert alias["Body"].read() == b"1"


def test_help_explains_the_verb(s3_env: dict[str, str]) -> None:
    res = preheat("push", "--help", env=s3_env)
    assert res.returncode == 0
    for word in (
        "SRC",
        "s3://BUCKET/PREFIX",
        "--name",
        "--version",
        "--alias",
        "--json",
        "--no-slim",
    ):
        assert word in res.stdout


def test_a_saved_model_is_pushed_exact_unless_no_slim(
    s3_env: dict[str, str], dest: str, dense_model: Any
) -> None:
    slimmed = preheat(
        "push", str(dense_model.path), dest, "--name", "d", "--version", "1", "--json", env=s3_env
    )
    assert slimmed.returncode == 0, slimmed.stderr
    assert orjson.loads(slimmed.stdout)["slimmed"] is True
    as_is = preheat(
        "push", str(dense_model.path), dest, "--name", "d", "--version", "2", "--no-slim",
        "--json", env=s3_env,
    )  # fmt: skip
    assert as_is.returncode == 0, as_is.stderr
    assert orjson.loads(as_is.stdout)["slimmed"] is False


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["{missing}", "{dest}", "--name", "m", "--version", "1"], "no such directory"),
        (["{src}", "not-a-uri", "--name", "m", "--version", "1"], "s3://BUCKET/PREFIX"),
        (["{src}", "{dest}", "--name", "../m", "--version", "1"], "model name"),
        (["{src}", "{dest}", "--name", "m", "--version", "a b"], "model version"),
        (["{src}", "s3://no-such-bucket-cli/p", "--name", "m", "--version", "1"], "bucket"),
        (["{src}", "{dest}", "--name", "m", "--version", "1", "--concurrency", "0"], "1 to 256"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_no_traceback(
    s3_env: dict[str, str],
    dest: str,
    artifact: Callable[..., Path],
    tmp_path: Path,
    args: list[str],
    expected: str,
) -> None:
    src = artifact(2, {"saved_model.pb": 100})
    filled = [a.format(src=src, dest=dest, missing=tmp_path / "nope") for a in args]
    res = preheat("push", *filled, "--json", env=s3_env)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("preheat push: error:") and expected in lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""
