"""The inference function's SnapStart hooks end to end: the emulator's SnapStart path runs
awslambdaric on Python 3.12 (INIT and before-snapshot hooks when the snapshot is prepared,
after-restore hooks at the cold start), the model a LiteRT artifact in moto behind an alias.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push, set_alias
from tests.fixtures.models import BuiltModel

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_DIR = ROOT / "functions" / "inference"
NAME = "inference-snap"


@pytest.fixture(scope="session")
def python312_litert(python312: str) -> str:
    """`.venv312`, which `make py312` gives the LiteRT interpreter that the zip form of the
    function runs on (Python 3.12 is where SnapStart starts; TensorFlow is the image's)."""
    probe = subprocess.run([python312, "-c", "import ai_edge_litert"], capture_output=True)
    assert probe.returncode == 0, "the Python 3.12 environment lacks ai-edge-litert: make py312"
    return python312


def _get(path: str = "/") -> dict[str, Any]:
    """A Function URL's GET: the function describes the model it serves."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "headers": {},
        "requestContext": {"http": {"method": "GET", "path": path}},
        "body": "",
        "isBase64Encoded": False,
    }


def _log_lines(text: str, message: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{") and f'"{message}"' in line:
            decoded = json.loads(line)
            if decoded.get("message") == message:
                found.append(decoded)
    return found


def test_the_inference_function_swaps_in_a_moved_alias_after_a_restore(
    dense_model: BuiltModel,
    s3_server: S3Server,
    start_emulator: Callable[..., Emulator],
    lambda_client_for: Callable[..., Any],
    python312_litert: str,
    tmp_path: Path,
) -> None:
    from preheat.tools.slim import slim

    art = tmp_path / "dense-litert"
    slim(dense_model.path, art, runtime="litert", precision="fp32", name="dense", version="1")
    bucket = f"snap-{uuid.uuid4().hex[:12]}"
    s3 = s3_server.client()
    s3.create_bucket(Bucket=bucket)
    dest = f"s3://{bucket}/store"
    for version in ("1", "2"):
        push(art, dest, name="dense", version=version, s3_client=s3)
    uri = set_alias(dest, "dense", "prod", "1", s3_client=s3)
    fn = FunctionConfig(
        name=NAME,
        code_dir=FUNCTION_DIR,
        handler="app.handler",
        python=python312_litert,
        snapstart=True,
        env={**s3_server.env(), "PREHEAT_MODEL_URI": uri, "PREHEAT_LOCAL_PATHS": ""},
        memory_mb=1024,
        timeout_s=60,
        init_timeout_s=120,
    )
    emu = start_emulator(fn)

    emu.prepare_snapshots(NAME)
    (parked,) = [e for e in emu.environments(NAME) if e.state == "parked"][:1]
    before = _log_lines(emu.log(parked.env_id), "preheat before snapshot")
    assert len(before) == 1 and before[0]["snapshot"]["version"] == "1"
    assert before[0]["snapshot"]["engines_closed"] == 1
    # The alias moves while the snapshot waits: the restore must find version 2.
    set_alias(dest, "dense", "prod", "2", s3_client=s3)

    client = lambda_client_for(emu)
    response = client.invoke(FunctionName=NAME, Payload=json.dumps(_get()).encode())
    answer = json.loads(response["Payload"].read())

    assert "FunctionError" not in response, answer
    assert json.loads(answer["body"])["model"]["version"] == "2"
    log = emu.log(parked.env_id)
    (moved,) = _log_lines(log, "preheat alias moved")
    assert (moved["alias"]["from"], moved["alias"]["to"]) == ("1", "2")
    (restore,) = _log_lines(log, "preheat restore")
    report = restore["restore"]
    assert report["moved"] is True and report["serving"] == "2"
    assert set(report["reseeded"]) >= {"random", "numpy"}
    assert "tensorflow" not in report["reseeded"]  # the LiteRT function never imports it
    (cold,) = [i for i in emu.stats(NAME).invocations if i.cold]
    assert cold.restore_duration_ms and cold.init_duration_ms is None
    # Warm pings from the restored environment carry the id renewed at the restore.
    ping = client.invoke(FunctionName=NAME, Payload=b'{"preheat": {"warm": {}}}')
    warm = json.loads(ping["Payload"].read())["preheat"]["warm"]
    assert warm["environment_id"] == report["environment_id"]
