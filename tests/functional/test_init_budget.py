"""The INIT budget on the emulator: a model fetched over a slow link, under Lambda's 10 s rule.

S3 (moto server) sits behind a bandwidth-capped TCP proxy, slow enough that fetching a small
real model takes about 14 s. Without the budget, INIT times out at 10 s and Lambda's retry
inside the invoke starts it all over; with it, INIT returns at about 9 s and the first
invoke waits for the load that went on. Assertions read the emulator's records and the log
lines (INIT_REPORT, REPORT, the function's init report), with coarse bounds only: the
machine is shared and TensorFlow's import time varies.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preheat.artifact import manifest as mf
from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.tools.local.s3 import S3Server, env_for
from preheat.tools.push import push
from tests.fixtures.models import BuiltModel
from tests.fixtures.s3 import SIGNATURE
from tests.fixtures.slowlink import SlowLink

pytestmark = pytest.mark.slow

FUNCTION_DIR = Path(__file__).resolve().parents[2] / "functions" / "inference"
# How long the model's bytes take through the slow link.
FETCH_S = 14.0
LAMBDA_INIT_LIMIT_S = 10.0
WARM_PING = b'{"preheat": {"warm": {}}}'


def _store_bytes(s3: Any, bucket: str) -> int:
    listing = s3.list_objects_v2(Bucket=bucket)
    return sum(int(o["Size"]) for o in listing.get("Contents", []))


@pytest.fixture
def slow_store(
    dense_model: BuiltModel, s3_server: S3Server, tmp_path: Path
) -> Iterator[tuple[SlowLink, dict[str, str]]]:
    """The dense model (dense/1) and a broken one (broken/1) in a fresh bucket, behind a
    link capped so that either model's bytes take FETCH_S; yields the link and the URIs."""
    s3 = s3_server.client()
    bucket = f"budget-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    dense = str(push(dense_model.path, f"s3://{bucket}/store", name="dense", version="1",
                     s3_client=s3).uri)  # fmt: skip
    size = _store_bytes(s3, bucket)
    # The same SavedModel, its manifest naming a signature it does not have: the fetch
    # succeeds, and the load fails only once the fetch is done (after the budget).
    broken_dir = tmp_path / "broken"
    shutil.copytree(dense_model.path, broken_dir)
    mf.build(broken_dir, name="broken", version="1", runtime="tensorflow", precision="exact",
             signature=SIGNATURE).write(broken_dir)  # fmt: skip
    broken = str(push(broken_dir, f"s3://{bucket}/store", name="broken", version="1",
                      s3_client=s3).uri)  # fmt: skip
    host, port = s3_server.endpoint_url.removeprefix("http://").split(":")
    with SlowLink((host, int(port)), bytes_per_s=size / FETCH_S) as link:
        yield link, {"dense": dense, "broken": broken}


def _function(name: str, uri: str, link: SlowLink, **env: str) -> FunctionConfig:
    return FunctionConfig(
        name=name,
        code_dir=FUNCTION_DIR,
        handler="app.handler",
        env={
            # boto3's own variable: the fetch reaches S3 through the slow link.
            **env_for(link.endpoint_url),
            "PREHEAT_MODEL_URI": uri,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **env,
        },
        # The most CPU Lambda gives below 3,008 MB's two vCPUs, so that TensorFlow's
        # import on this shared machine stays well inside the budget.
        memory_mb=3008,
        timeout_s=90,
        init_timeout_s=LAMBDA_INIT_LIMIT_S,
    )


def _json_lines(log: str, message: str) -> list[dict[str, Any]]:
    out = []
    for line in log.splitlines():
        if line.startswith("{") and f'"{message}"' in line:
            doc = json.loads(line)
            if doc.get("message") == message:
                out.append(doc)
    return out


def _predict(client: Any, name: str, x: np.ndarray) -> tuple[dict[str, Any], dict[str, Any], float]:
    start = time.monotonic()
    resp = client.invoke(FunctionName=name, Payload=json.dumps({"inputs": {"x": x.tolist()}}))
    return resp, json.loads(resp["Payload"].read()), time.monotonic() - start


def _check_answer(dense_model: BuiltModel, x: np.ndarray, answer: dict[str, Any]) -> None:
    (out_spec,) = dense_model.signature.outputs
    want = dense_model.reference({"x": x})[out_spec.name]
    np.testing.assert_allclose(answer["outputs"][out_spec.name], want, rtol=1e-6)


X = np.random.default_rng(11).standard_normal((2, 4)).astype("float32")


def test_without_the_budget_init_times_out_and_runs_again_inside_the_invoke(
    dense_model: BuiltModel,
    slow_store: tuple[SlowLink, dict[str, str]],
    start_emulator: Callable[..., Emulator],
    lambda_client_for: Callable[..., Any],
) -> None:
    link, uris = slow_store
    emu = start_emulator(_function("nobudget", uris["dense"], link, PREHEAT_INIT_BUDGET_S="0"))
    client = lambda_client_for(emu)

    resp, answer, wall_s = _predict(client, "nobudget", X)

    assert "FunctionError" not in resp, answer
    _check_answer(dense_model, X, answer)
    stats = emu.stats("nobudget")
    (env,) = stats.environments
    (first,) = stats.invocations
    log = emu.log(env.env_id)
    # INIT ran into Lambda's limit, then ran again inside the invoke: no Init Duration on
    # the REPORT, the retry's time is the invoke's Duration.
    assert "Status: timeout" in log, log[-2000:]
    assert first.cold and first.outcome == "success" and first.init_duration_ms is None
    report = [ln for ln in log.splitlines() if ln.startswith("REPORT ")]
    assert len(report) == 1 and "Init Duration" not in report[0]
    (init,) = _json_lines(log, "preheat init")
    assert init["init"]["init_budget_s"] is None and init["init"]["handed_back"] is False
    # The answer came after both: the 10 s that were cut off, then a whole INIT again.
    assert wall_s > LAMBDA_INIT_LIMIT_S + 0.5 * FETCH_S
    print(f"\nstore {link.bytes_per_s * FETCH_S / 1000:.1f} kB at {link.bytes_per_s:.0f} B/s; "
          f"budget off: first answer after {wall_s:.1f} s (INIT timed out, then retried); "
          f"invoke Duration {first.duration_ms / 1000:.1f} s")  # fmt: skip


def test_with_the_budget_init_returns_in_time_and_the_first_invoke_answers(
    dense_model: BuiltModel,
    slow_store: tuple[SlowLink, dict[str, str]],
    start_emulator: Callable[..., Emulator],
    lambda_client_for: Callable[..., Any],
) -> None:
    link, uris = slow_store
    emu = start_emulator(_function("budget", uris["dense"], link))  # the default budget
    client = lambda_client_for(emu)

    resp, answer, wall_s = _predict(client, "budget", X)
    ping = json.loads(client.invoke(FunctionName="budget", Payload=WARM_PING)["Payload"].read())

    assert "FunctionError" not in resp, answer
    _check_answer(dense_model, X, answer)
    stats = emu.stats("budget")
    (env,) = stats.environments
    first, second = stats.invocations
    log = emu.log(env.env_id)
    assert "Status: timeout" not in log
    # INIT ended at the budget, inside Lambda's limit, in one go; the invoke then waited.
    assert first.cold and first.outcome == "success" and first.init_duration_ms is not None
    assert 7_000 < first.init_duration_ms < LAMBDA_INIT_LIMIT_S * 1000
    assert f"Init Duration: {first.init_duration_ms:.2f} ms" in log
    (init,) = _json_lines(log, "preheat init")
    assert init["init"]["handed_back"] is True and init["init"]["init_budget_s"] == 9.0
    (done,) = _json_lines(log, "preheat load done")
    late = done["init"]
    assert late["handed_back"] is True and late["name"] == "dense"
    assert late["background_load_s"] > late["load_after_init_s"] > 0
    # The whole first answer: about the fetch's time, not 10 s more.
    assert wall_s < LAMBDA_INIT_LIMIT_S + FETCH_S
    assert ping["preheat"]["warm"]["loading"] is False
    assert ping["preheat"]["warm"]["model_loaded"] is True and not second.cold
    print(f"\nbudget 9 s: INIT {first.init_duration_ms / 1000:.1f} s (handed back), first "
          f"answer after {wall_s:.1f} s in one invoke (Duration "
          f"{first.duration_ms / 1000:.1f} s), background load "
          f"{late['background_load_s']:.1f} s")  # fmt: skip


def test_a_warm_ping_during_the_load_answers_at_once_with_loading(
    dense_model: BuiltModel,
    slow_store: tuple[SlowLink, dict[str, str]],
    start_emulator: Callable[..., Emulator],
    lambda_client_for: Callable[..., Any],
) -> None:
    link, uris = slow_store
    emu = start_emulator(_function("pinged", uris["dense"], link))
    client = lambda_client_for(emu)

    ping = json.loads(client.invoke(FunctionName="pinged", Payload=WARM_PING)["Payload"].read())
    resp, answer, _ = _predict(client, "pinged", X)

    warm = ping["preheat"]["warm"]
    assert warm["loading"] is True and warm["model_loaded"] is False and warm["first_call"]
    assert "FunctionError" not in resp, answer
    _check_answer(dense_model, X, answer)
    first, second = emu.stats("pinged").invocations
    # The ping did not wait for the model: its own Duration is a blink beside the load's.
    assert first.cold and first.outcome == "success" and first.duration_ms < 1_000
    assert not second.cold and second.outcome == "success"


def test_a_load_failing_after_init_fails_the_invoke_and_the_next_one_starts_afresh(
    slow_store: tuple[SlowLink, dict[str, str]],
    start_emulator: Callable[..., Emulator],
    lambda_client_for: Callable[..., Any],
) -> None:
    link, uris = slow_store
    emu = start_emulator(_function("broken", uris["broken"], link))
    client = lambda_client_for(emu)

    first_resp, first_error, _ = _predict(client, "broken", X)
    stats = emu.stats("broken")
    (gone,) = stats.environments
    # The runtime exits once the error is reported: wait for the emulator to see it.
    deadline = time.monotonic() + 30
    while emu.stats("broken").environments[0].state != "dead" and time.monotonic() < deadline:
        time.sleep(0.1)
    # Unthrottled now: the fresh environment's INIT fails within the budget, as INIT.
    link.bytes_per_s = None
    second_resp, second_error, _ = _predict(client, "broken", X)

    assert first_resp["FunctionError"] == "Unhandled"
    assert first_error["errorType"] == "LoadError"
    assert "does not match its manifest" in first_error["errorMessage"]
    assert "\n" not in first_error["errorMessage"]
    first, second = emu.stats("broken").invocations
    # INIT had ended at the budget; the failure came in the invoke, which it failed.
    assert first.cold and first.init_duration_ms is not None and first.outcome == "error"
    log = emu.log(gone.env_id)
    (failed,) = _json_lines(log, "preheat init failed")
    assert failed["error"]["message"] == first_error["errorMessage"]
    envs = emu.stats("broken").environments
    assert len(envs) == 2 and envs[0].state == "dead"
    # The next invoke cold-started a new environment, whose INIT failed with the same line.
    assert second.cold and second.env_id != first.env_id
    assert second.outcome == "init_error" or "FunctionError" in second_resp
    assert second_error["errorType"] == "LoadError"
    assert second_error["errorMessage"] == first_error["errorMessage"]
