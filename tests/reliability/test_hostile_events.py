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
        # A prediction in any form, a description, a status or a health answer.
        known = {"outputs", "inputs", "predictions", "model_version_status", "model_spec"}
        assert (known | {"live", "ready", "extensions"}) & set(payload), payload
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


# ------------------------------------------------------------- TF Serving, OIP, raw forms

PATHS = st.sampled_from(
    [
        "/v1/models/model:predict",
        "/v1/models/model/versions/1:predict",
        "/v1/models/model/labels/x:predict",
        "/v1/models/other:predict",
        "/v1/models/model",
        "/v1/models/model/metadata",
        "/v1/models/model:regress",
        "/v2/models/model/infer",
        "/v2/models/model/versions/7/infer",
        "/v2/models/model",
        "/v2/models/model/ready",
        "/v2/health/ready",
        "/v2",
        "/",
    ]
)
DATATYPES = st.sampled_from(["FP32", "FP64", "INT64", "BOOL", "BYTES", "FP16", "BF16", "x", 3])
shapes = st.lists(st.integers(-2, 6), max_size=4) | st.just([1, 4]) | json_value


def _oip_tensor(name: Any, datatype: Any, shape: Any, size: Any, data: Any) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    if size is not None:
        tensor["parameters"] = {"binary_data_size": size}
    if data is not None:
        tensor["data"] = data
    return tensor


oip_tensors = st.builds(
    _oip_tensor,
    name=st.sampled_from(["x", "y", "", 5]),
    datatype=DATATYPES,
    shape=shapes,
    size=st.none() | st.integers(-4, 40) | st.just(16),
    data=st.none() | almost_x | json_value,
)


def _binary_event(
    path: str, method: str, header: Any, tail: bytes, claimed: Any, cut: int | None
) -> dict[str, Any]:
    head = json.dumps(header).encode()  # the standard library writes NaN and 2**70 too
    body = head + tail
    if cut is not None:
        body = body[: max(len(body) - cut, 0)]  # a truncated body
    headers: dict[str, Any] = {"content-type": "application/octet-stream"}
    if claimed == "true":
        headers["inference-header-content-length"] = str(len(head))
    elif claimed is not None:
        headers["inference-header-content-length"] = claimed  # a lie, or not a number
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": path}},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


protocol_events = st.builds(
    _binary_event,
    path=PATHS,
    method=st.sampled_from(["POST", "GET", "PUT"]),
    header=st.one_of(
        st.builds(
            lambda inputs, params, outputs: {
                "inputs": inputs,
                "parameters": params,
                "outputs": outputs,
            },
            st.lists(oip_tensors, max_size=3),
            st.none() | st.just({"binary_data_output": True}) | json_value,
            st.none() | st.just([{"name": "output_0", "parameters": {"binary_data": True}}]),
        ),
        st.builds(lambda rows: {"instances": rows}, almost_x | valid_x | json_value),
        st.builds(
            lambda cols, sig: {"inputs": cols, "signature_name": sig},
            almost_x | valid_x | json_value,
            st.sampled_from(["serving_default", "nope", 3]),
        ),
        json_value,
    ),
    tail=st.binary(max_size=48) | st.just(np.zeros((1, 4), "<f4").tobytes()),
    claimed=st.sampled_from([None, "true", "true", "-1", "abc", "99999", "0"]),
    cut=st.none() | st.integers(0, 20),
)


def _raw_tensor(b64: Any, dtype: Any, shape: Any) -> dict[str, Any]:
    return {"b64": b64, "dtype": dtype, "shape": shape}


raw_events = st.builds(
    lambda tensors: {"inputs": tensors},
    st.dictionaries(
        st.sampled_from(["x", "y"]),
        st.builds(
            _raw_tensor,
            b64=st.builds(lambda b: base64.b64encode(b).decode(), st.binary(max_size=40))
            | st.text(max_size=8),
            dtype=st.sampled_from(["float32", "float64", "int64", "bool", "string", "object", 1]),
            shape=shapes,
        ),
        min_size=1,
    ),
)
direct_protocol_events = st.one_of(
    raw_events,
    st.builds(lambda t: {"inputs": t}, st.lists(oip_tensors, min_size=1, max_size=2)),
    st.builds(lambda rows: {"instances": rows, "signature_name": "serving_default"}, almost_x),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(event=protocol_events | direct_protocol_events)
def test_any_protocol_request_gets_an_answer_or_a_4xx(app: ModuleType, event: Any) -> None:
    response = app.handler(event, Context())
    if isinstance(response, dict) and response.get("isBase64Encoded"):
        # A binary OIP answer: only a success may take that form.
        assert response["statusCode"] == 200
        return
    _check(response)


def test_environment_answers_after_the_protocol_barrage(
    app: ModuleType, dense_model: BuiltModel
) -> None:
    x = np.array([[0.5, -1.0, 2.0, 3.0]], dtype="float32")
    raw = x.tobytes()
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 4],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    event = _binary_event("/v2/models/model/infer", "POST", {}, b"", None, None)
    event["headers"]["inference-header-content-length"] = str(len(head))
    event["body"] = base64.b64encode(head + raw).decode()
    status, payload = _check(app.handler(event, Context()))
    assert status == 200
    expected = dense_model.reference({"x": x})["output_0"]
    (out,) = payload["outputs"]
    np.testing.assert_allclose(np.reshape(out["data"], out["shape"]), expected, rtol=1e-6)
