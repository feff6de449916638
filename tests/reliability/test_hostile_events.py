"""Hostile events against the inference function, in-process with a real model loaded once.

Whatever arrives, the answer is a prediction or a 4xx naming what is wrong: never a 500,
never an exception out of the handler, and the environment still answers afterwards.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.models import BuiltModel

APP = Path(__file__).resolve().parents[2] / "functions" / "inference" / "app.py"


@dataclass
class Context:
    """What Lambda passes as `context`, as far as the handler's decorators read it."""

    function_name: str = "inference"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:inference"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/inference"
    log_stream_name: str = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture(scope="module")
def app(dense_model: BuiltModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """functions/inference/app.py imported once, its model a local artifact of `dense`."""
    artifact = dense_model.as_artifact(tmp_path_factory.mktemp("hostile") / "dense")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREHEAT_MODEL_URI", str(artifact))
        mp.setenv("PREHEAT_CACHE_DIR", str(tmp_path_factory.mktemp("hostile-cache")))
        mp.setenv("POWERTOOLS_METRICS_NAMESPACE", "preheat-tests")
        spec = importlib.util.spec_from_file_location("hostile_inference_app", APP)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        yield module
        sys.modules.pop(spec.name, None)


# ---------------------------------------------------------------------------- strategies

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=25,
)
number = st.floats(width=32, allow_nan=False, allow_infinity=False) | st.integers(-1000, 1000)
# Mostly the right kind of thing in the wrong shape, sometimes a bad leaf.
almost_x = st.lists(
    st.lists(number | st.sampled_from([None, "1.0", True, float("nan"), 1e40, 2**64]), max_size=6),
    max_size=4,
) | st.lists(number, max_size=6)
valid_x = st.lists(st.lists(number, min_size=4, max_size=4), min_size=1, max_size=4)


def _direct(inputs: Any) -> Any:
    return {"inputs": inputs}


def _http_event(
    version: str, method: Any, body: Any, b64: Any, extra: dict[str, Any]
) -> dict[str, Any]:
    if version == "1.0":
        event: dict[str, Any] = {"httpMethod": method, "path": "/", "requestContext": {}}
    else:
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/",
            "requestContext": {"http": {"method": method, "path": "/"}},
        }
    event["body"] = body
    if b64 is not None:
        event["isBase64Encoded"] = b64
    event.update(extra)
    return event


def _body(payload: Any, how: str) -> Any:
    # The standard library writes what a careless client sends: NaN, 2**70 and all.
    text = json.dumps(payload)
    if how == "json":
        return text
    if how == "b64":
        return base64.b64encode(text.encode()).decode()
    return payload  # raw: whatever object it is


payloads = st.one_of(
    json_value,
    st.builds(_direct, json_value),
    st.builds(_direct, st.dictionaries(st.sampled_from(["x", "y", "X", ""]), almost_x)),
    st.builds(lambda v: {"inputs": {"x": v}}, almost_x | valid_x),
    almost_x,
)
http_events = st.builds(
    _http_event,
    version=st.sampled_from(["1.0", "2.0"]),
    method=st.sampled_from(["POST", "GET", "PUT", "post", None, 7]),
    body=st.one_of(
        st.builds(_body, payloads, st.just("json")),
        st.builds(_body, payloads, st.just("b64")),
        st.text(max_size=30),
        st.none(),
        st.integers(),
        st.binary(max_size=20),
    ),
    b64=st.sampled_from([None, True, False, "yes", 0]),
    extra=st.dictionaries(st.sampled_from(["headers", "queryStringParameters"]), json_value),
)
events = st.one_of(payloads, http_events)


def _check(response: Any) -> tuple[int, Any]:
    """(status, decoded payload) of a handler answer, after checking its shape."""
    assert isinstance(response, dict), response
    if "body" in response and "statusCode" in response:  # an HTTP answer
        status = response["statusCode"]
        payload = orjson.loads(response["body"])
    else:
        status = response.get("statusCode", 200)
        payload = response
    assert isinstance(status, int)
    if status == 200:
        # A prediction in any form, a GET's description or a TF Serving status.
        assert {"outputs", "inputs", "predictions", "model_version_status", "live", "ready"} & set(
            payload
        ), payload
    else:
        assert 400 <= status < 500 or status == 501, payload
        error = payload["error"]
        # preheat's own forms carry {"message", "type"}; TF Serving and OIP a bare string.
        message = error if isinstance(error, str) else error["message"]
        assert isinstance(message, str) and message.strip() and "\n" not in message
        assert "Traceback" not in message
    return status, payload


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(event=events)
def test_any_event_gets_a_prediction_or_a_4xx(app: ModuleType, event: Any) -> None:
    _check(app.handler(event, Context()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=valid_x, as_http=st.booleans())
def test_every_valid_request_gets_the_model_output(
    app: ModuleType, dense_model: BuiltModel, rows: list[list[float]], as_http: bool
) -> None:
    event: Any = {"inputs": {"x": rows}}
    if as_http:
        event = _http_event("2.0", "POST", orjson.dumps(event).decode(), None, {})
    status, payload = _check(app.handler(event, Context()))
    assert status == 200
    expected = dense_model.reference({"x": np.asarray(rows, dtype="float32")})
    for name, value in expected.items():
        assert_same_output(payload["outputs"][name], value)


def assert_same_output(got: Any, expected: np.ndarray) -> None:
    """Equal where the model's output is finite; null where it overflowed (JSON has no inf)."""
    arr = np.array(got, dtype=object)
    assert arr.shape == expected.shape
    finite = np.isfinite(expected)
    assert all(v is None for v in arr[~finite])
    np.testing.assert_allclose(
        arr[finite].astype("float64"), expected[finite], rtol=1e-5, atol=1e-6
    )


def test_environment_still_answers_after_the_barrage(
    app: ModuleType, dense_model: BuiltModel
) -> None:
    barrage: list[Any] = [{"inputs": {"x": [[1e39] * 4]}}, {"inputs": "x" * 1000}, [[[]]], {}]
    for event in barrage:
        _check(app.handler(event, Context()))
    x = [[0.5, -1.0, 2.0, 3.0]]
    status, payload = _check(app.handler({"inputs": {"x": x}}, Context()))
    assert status == 200
    expected = dense_model.reference({"x": np.asarray(x, dtype="float32")})
    assert_same_output(payload["outputs"]["output_0"], expected["output_0"])


def test_oversized_http_body_is_413(app: ModuleType) -> None:
    body = "[" + ",".join(["1.0"] * 2_000_000) + "]"  # 8 MB, over 6 MiB
    status, payload = _check(app.handler(_http_event("2.0", "POST", body, None, {}), Context()))
    assert status == 413
    assert "MB" in payload["error"]["message"]
