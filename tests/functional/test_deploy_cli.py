"""`preheat deploy` and `preheat destroy` as a user runs them, against the moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from preheat.tools.local.s3 import S3Server
from tests.functional.test_deploy import (
    CHUNK,
    make_runtime_layer,
    payload,
    write_litert_artifact,
)

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")


@pytest.fixture(scope="module")
def runtime_layer_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_runtime_layer(tmp_path_factory.mktemp("layer") / "runtime.zip")


def preheat(server: S3Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return subprocess.run(
        [sys.executable, "-m", "preheat.tools.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


def test_deploy_dry_run_then_deploy_then_no_changes_then_destroy(
    s3_server: S3Server, tmp_path: Path, runtime_layer_zip: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    stack, bucket = f"cli-{suffix}", f"preheat-cli-{suffix}"
    model = write_litert_artifact(tmp_path / "m", {"model.tflite": payload(5, 2 * CHUNK)})
    common = [
        "--stack", stack, "--bucket", bucket, "--model", str(model),
        "--region", "us-east-1", "--runtime-layer", str(runtime_layer_zip),
    ]  # fmt: skip

    dry = preheat(s3_server, "deploy", "--json", "--dry-run", *common)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] and report["done"] is None
    assert report["plan"]["stack_action"] == "create"
    assert report["plan"]["chunk_bytes_to_upload"] == 2 * CHUNK

    first = preheat(s3_server, "deploy", "--json", *common)
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)["done"]
    assert done["uploaded_bytes"] >= 2 * CHUNK and done["skipped_bytes"] == 0
    assert done["stack_status"] == "UPDATE_COMPLETE"
    # moto runs no function: the prewarm fails, which is a warning, not a failed deploy.
    assert "warning: prewarm" in first.stderr

    again = preheat(s3_server, "deploy", *common)
    assert again.returncode == 0, again.stderr
    assert "no changes" in again.stdout

    refused = preheat(s3_server, "destroy", "--stack", stack)
    assert refused.returncode == 2 and "--yes" in refused.stderr

    gone = preheat(s3_server, "destroy", "--json", "--yes", "--stack", stack)
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["bucket_deleted"] is False


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--bucket", "Bad_Bucket"], "--bucket"),
        (["--stack", "x" * 129], "128"),
        (["--region", "us-nowhere-9"], "--region"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    s3_server: S3Server, tmp_path: Path, args: list[str], words: str
) -> None:
    model = write_litert_artifact(tmp_path / "m", {"model.tflite": payload(6, 1000)})
    base = {"--stack": "ok-stack", "--bucket": "ok-bucket", "--region": "us-east-1"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for kv in base.items() for x in kv]
    proc = preheat(s3_server, "deploy", "--model", str(model), *flat)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr


def test_snapstart_with_provisioned_concurrency_is_one_line_and_exit_2(
    s3_server: S3Server, tmp_path: Path
) -> None:
    model = write_litert_artifact(tmp_path / "m", {"model.tflite": payload(7, 1000)})
    proc = preheat(
        s3_server, "deploy", "--model", str(model), "--stack", "ok-stack",
        "--bucket", "ok-bucket", "--region", "us-east-1", "--snapstart", "--provisioned", "2",
    )  # fmt: skip
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "--provisioned" in line and "SnapStart" in line and "drop" in line
