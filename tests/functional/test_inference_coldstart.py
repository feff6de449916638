"""The inference function cold-started in fresh processes, as Lambda runs it, over real S3.

Each cold start is a new Python process that imports functions/inference/app.py with
PREHEAT_MODEL_URI pointing at a model pushed to the moto server, then calls `handler`
with a list of events and prints what came back.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from preheat.artifact.manifest import Manifest
from preheat.cache.s3 import blob_key
from preheat.tools import coldstart
from preheat.tools.coldstart import ColdStart
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push
from tests.fixtures.models import BuiltModel

pytestmark = pytest.mark.slow


def cold_start(
    uri: str,
    s3_env: dict[str, str],
    cache_dir: Path,
    events: list[Any],
    **extra_env: str,
) -> ColdStart:
    env = {
        **os.environ,
        **s3_env,
        "PREHEAT_MODEL_URI": uri,
        "PREHEAT_CACHE_DIR": str(cache_dir),
        "PREHEAT_LOCAL_PATHS": "",
        "PREHEAT_FETCH_RETRIES": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra_env,
    }
    return coldstart.run(events, env)


def push_model(server: S3Server, bucket: str, model: BuiltModel, name: str, version: str) -> Any:
    return push(
        model.path, f"s3://{bucket}/store", name=name, version=version, s3_client=server.client()
    )


def http_v1(payload: Any, *, b64: bool = False) -> dict[str, Any]:
    body = orjson.dumps(payload)
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": "POST",
        "headers": {"content-type": "application/json"},
        "requestContext": {"stage": "prod", "httpMethod": "POST"},
        "body": base64.b64encode(body).decode() if b64 else body.decode(),
        "isBase64Encoded": b64,
    }


def http_v2(body: str, *, b64: bool = False, method: str = "POST") -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": "/"}},
        "body": base64.b64encode(body.encode()).decode() if b64 else body,
        "isBase64Encoded": b64,
    }


# ---------------------------------------------------------------- one environment, many events

X = np.random.default_rng(11).standard_normal((3, 4)).astype("float32")
GOOD = {"inputs": {"x": X.tolist()}}

# (event, expected status, a phrase the message must contain)
BAD_DIRECT: list[tuple[Any, int, str]] = [
    ({"inputs": {}}, 400, "missing input 'x'"),
    ({"inputs": {"x": X.tolist(), "y": [1]}}, 400, "unknown input 'y'"),
    ({"inputs": {"x": [[1, 2, 3, 4, 5]]}}, 400, "has shape (1, 5); the model expects (batch, 4)"),
    ({"inputs": {"x": [[1, 2, "three", 4]]}}, 400, "must hold numbers (float32) only"),
    ({"inputs": {"x": [[1, 2, None, 4]]}}, 400, "found null"),
    ({"inputs": {"x": [[1, 2, 3, 4], [1, 2]]}}, 400, "ragged"),
    ({"inputs": {"x": [[True, False, True, False]]}}, 400, "found a boolean"),
    ({"rows": [[1, 2, 3, 4]]}, 400, 'the event must be {"inputs"'),
]
BAD_HTTP: list[tuple[Any, int, str]] = [
    (http_v2("{not json"), 400, "not valid JSON"),
    (http_v2('{"inputs": {"x": [[NaN, 1, 2, 3]]}}'), 400, "not valid JSON"),
    (http_v2("x" * (6 * 1024 * 1024 + 1)), 413, "Lambda accepts at most"),
    (http_v1({"inputs": {"x": [[1, 2, 3]]}}), 400, "the model expects (batch, 4)"),
]


@pytest.fixture(scope="module")
def dense_uri(dense_model: BuiltModel, s3_server: S3Server) -> str:
    bucket = f"inference-{os.getpid()}"
    s3_server.client().create_bucket(Bucket=bucket)
    return str(push_model(s3_server, bucket, dense_model, "dense", "1").uri)


@pytest.fixture(scope="module")
def many_events(
    dense_uri: str, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> ColdStart:
    tmp = tmp_path_factory.mktemp("many-events")
    events: list[Any] = [
        {"preheat": {"warm": {}}, "inputs": "never looked at"},
        GOOD,
        X.tolist(),
        http_v1(GOOD),
        http_v1(GOOD, b64=True),
        http_v2(orjson.dumps(GOOD).decode()),
        http_v2(orjson.dumps(X.tolist()).decode(), b64=True),
        http_v2("", method="GET"),
        *[e for e, _, _ in BAD_DIRECT],
        *[e for e, _, _ in BAD_HTTP],
        GOOD,
    ]
    run = cold_start(dense_uri, s3_server.env(), tmp / "cache", events)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_first_init_fetches_from_s3(many_events: ColdStart) -> None:
    report = many_events.output["init_report"]
    assert report["tier"] == "s3"
    assert report["bytes_by_tier"]["s3"] > 0
    assert report["prefetched"] is True
    for phase in ("preheat_import_s", "runtime_import_s", "fetch_s", "load_s", "warmup_s"):
        assert report[phase] >= 0
    assert report["init_s"] >= report["runtime_import_s"]
    # The function imports no TensorFlow itself: the loader did, lean, and says so.
    assert report["tf_import"] == "lean" and "tf_import_reason" not in report


def test_predictions_equal_the_reference_in_every_event_shape(
    many_events: ColdStart, dense_model: BuiltModel
) -> None:
    (out_spec,) = dense_model.signature.outputs
    want = dense_model.reference({"x": X})[out_spec.name]
    r = many_events.results
    direct = [r[1], r[2], r[-1]]
    http = [r[3], r[4], r[5], r[6]]
    for res in direct:
        np.testing.assert_allclose(res["outputs"][out_spec.name], want, rtol=1e-6)
    for res in http:
        assert res["statusCode"] == 200
        assert res["headers"]["content-type"] == "application/json"
        body = json.loads(res["body"])
        np.testing.assert_allclose(body["outputs"][out_spec.name], want, rtol=1e-6)


def test_warm_ping_is_answered_before_the_model_path(many_events: ColdStart) -> None:
    warm = many_events.results[0]["preheat"]["warm"]
    assert warm["first_call"] is True
    assert warm["model_loaded"] is True
    assert warm["environment_id"]
    assert warm["init_ms"] > 0
    # The ping carried unusable inputs: had it reached the model path, it would be a 400.
    assert "error" not in many_events.results[0]


def test_get_describes_the_model(many_events: ColdStart) -> None:
    res = many_events.results[7]
    body = json.loads(res["body"])
    assert res["statusCode"] == 200
    assert body["model"] == {"name": "dense", "version": "1", "runtime": "tensorflow"}
    assert body["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 4]}]


def test_every_bad_input_is_a_4xx_with_a_message(many_events: ColdStart) -> None:
    results = many_events.results[8 : 8 + len(BAD_DIRECT) + len(BAD_HTTP)]
    for res, (event, status, phrase) in zip(results, BAD_DIRECT + BAD_HTTP, strict=True):
        if "statusCode" in res and "body" in res:
            error = json.loads(res["body"])["error"]
        else:
            error = res["error"]
        assert res["statusCode"] == status, (event if len(str(event)) < 300 else "...", res)
        assert phrase in error["message"], error


def test_the_environment_answers_after_bad_requests(many_events: ColdStart) -> None:
    assert "outputs" in many_events.results[-1]


def test_init_breakdown_is_logged_once_and_published_as_metrics(many_events: ColdStart) -> None:
    lines = many_events.log_lines()
    inits = [ln for ln in lines if ln.get("message") == "preheat init"]
    assert len(inits) == 1
    assert inits[0]["init"]["tier"] == "s3"
    emf = [ln for ln in lines if "_aws" in ln]
    names = {m["Name"] for ln in emf for d in ln["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {
        "InitFetchMs",
        "InitLoadMs",
        "InitWarmupMs",
        "InitRuntimeImportMs",
        "ColdStart",
    } <= names
    cold_starts = [ln for ln in emf if "ColdStart" in ln]
    assert len(cold_starts) == 1
    flagged = [ln for ln in lines if ln.get("message") == "bad request"]
    assert flagged and flagged[0]["cold_start"] is False


def test_nan_in_a_direct_invocation_is_refused(
    dense_uri: str, s3_server: S3Server, tmp_path: Path
) -> None:
    # Python's json (which the runtime client uses) reads NaN; the handler must refuse it.
    run = cold_start(
        dense_uri,
        s3_server.env(),
        tmp_path / "cache",
        [{"inputs": {"x": [[float("nan"), 1, 2, 3]]}}, GOOD],
    )
    nan, good = run.results
    assert nan["statusCode"] == 400 and "NaN" in nan["error"]["message"]
    assert "outputs" in good


# ---------------------------------------------------------------- tiers and INIT failures


def test_second_init_comes_from_disk_with_s3_stopped(
    dense_model: BuiltModel,
    s3_server_factory: Callable[[], S3Server],
    tmp_path: Path,
) -> None:
    server = s3_server_factory()
    server.client().create_bucket(Bucket="own")
    uri = str(push_model(server, "own", dense_model, "dense", "7").uri)
    env = server.env()
    first = cold_start(uri, env, tmp_path / "cache", [GOOD])
    assert first.output["init_report"]["tier"] == "s3"
    server.stop()
    second = cold_start(uri, env, tmp_path / "cache", [GOOD])
    assert "init_error" not in second.output, second.output
    assert second.output["init_report"]["tier"] == "disk"
    assert second.output["init_report"]["bytes_by_tier"].get("s3", 0) == 0
    assert second.results == first.results


def test_a_chunk_corrupted_in_s3_fails_init_naming_the_file(
    dense_model: BuiltModel, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    pushed = push_model(s3_server, bucket, dense_model, "dense", "1")
    manifest: Manifest = pushed.manifest
    victim = max(manifest.files, key=lambda f: f.size)
    chunk = victim.chunks[0]
    s3_server.client().put_object(
        Bucket=bucket, Key=blob_key("store", chunk.sha256), Body=b"\0" * chunk.size
    )
    run = cold_start(str(pushed.uri), s3_server.env(), tmp_path / "cache", [GOOD])
    assert run.output["init_error"]["type"] == "IntegrityError"
    assert victim.path in run.output["init_error"]["message"]
    failed = [ln for ln in run.log_lines() if ln.get("message") == "preheat init failed"]
    assert len(failed) == 1
    assert failed[0]["error"]["type"] == "IntegrityError"
    assert victim.path in failed[0]["error"]["message"]
    # Nothing half-written is left where the next INIT would trust it.
    assert not list((tmp_path / "cache").rglob("manifest.json"))


def test_a_model_that_does_not_exist_fails_init_clearly(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    uri = f"s3://{bucket}/store/models/nothing/1"
    run = cold_start(uri, s3_server.env(), tmp_path / "cache", [GOOD])
    err = run.output["init_error"]
    assert err["type"] == "ArtifactNotFound"
    assert uri in err["message"] and "not found" in err["message"]


def test_no_model_uri_fails_init_clearly(s3_server: S3Server, tmp_path: Path) -> None:
    run = cold_start("", s3_server.env(), tmp_path / "cache", [GOOD])
    err = run.output["init_error"]
    assert err["type"] == "ConfigurationError"
    assert "PREHEAT_MODEL_URI" in err["message"]


def test_prefetch_off_still_loads_in_series(
    dense_uri: str, s3_server: S3Server, tmp_path: Path
) -> None:
    run = cold_start(dense_uri, s3_server.env(), tmp_path / "cache", [GOOD], PREHEAT_PREFETCH="0")
    report = run.output["init_report"]
    assert report["prefetched"] is False and report["tier"] == "s3"
    assert "outputs" in run.results[0]


def test_with_xray_on_the_handler_answers_and_sends_segments(
    dense_uri: str, s3_server: S3Server, tmp_path: Path
) -> None:
    # A UDP socket stands in for the X-Ray daemon that Lambda runs when tracing is active.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(5)
        host, port = daemon.getsockname()
        run = cold_start(
            dense_uri,
            s3_server.env(),
            tmp_path / "cache",
            [GOOD],
            LAMBDA_TASK_ROOT=str(tmp_path),
            AWS_XRAY_DAEMON_ADDRESS=f"{host}:{port}",
            _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        assert "outputs" in run.results[0], run.results
        datagrams = []
        with contextlib.suppress(TimeoutError):
            while True:
                datagrams.append(daemon.recv(65536))
    segments = [json.loads(d.split(b"\n", 1)[1]) for d in datagrams]
    names = {s.get("name") for s in segments}
    assert any("handler" in str(n) or "_predict" in str(n) for n in names), names
