"""Events of every shape become a request, and answers take the shape the caller expects."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import orjson
import pytest

from preheat.exceptions import BadRequest
from preheat.serving import events, responses

INPUTS = {"x": [[1.0, 2.0, 3.0, 4.0]]}


def v1(body: str | None, *, method: str = "POST", b64: bool = False) -> dict[str, Any]:
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": method,
        "headers": {"content-type": "application/json"},
        "requestContext": {"stage": "prod", "httpMethod": method},
        "body": body,
        "isBase64Encoded": b64,
    }


def v2(body: str | None, *, method: str = "POST", b64: bool = False) -> dict[str, Any]:
    # A Function URL event has this same shape (payload format 2.0).
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": "/"}},
        "body": body,
        "isBase64Encoded": b64,
    }


def test_direct_invocation_with_named_inputs() -> None:
    req = events.parse({"inputs": INPUTS})
    assert req == events.Request(inputs=INPUTS, http=False)


def test_direct_invocation_with_a_bare_list() -> None:
    assert events.parse([[1, 2, 3, 4]]).inputs == [[1, 2, 3, 4]]


@pytest.mark.parametrize("make", [v1, v2])
def test_http_events_carry_a_json_body(make: Any) -> None:
    req = events.parse(make(orjson.dumps({"inputs": INPUTS}).decode()))
    assert req.http and req.inputs == INPUTS and req.method == "POST"


@pytest.mark.parametrize("make", [v1, v2])
def test_base64_bodies_are_decoded(make: Any) -> None:
    body = base64.b64encode(orjson.dumps([[1, 2, 3, 4]])).decode()
    assert events.parse(make(body, b64=True)).inputs == [[1, 2, 3, 4]]


@pytest.mark.parametrize("make", [v1, v2])
def test_get_asks_for_the_description(make: Any) -> None:
    assert events.parse(make(None, method="GET")).method == "GET"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (v1("{not json"), "not valid JSON"),
        (v2(None), "has no body"),
        (v2("aGVsbG8=!!", b64=True), "not valid base64"),
        (v2('{"rows": []}'), 'must be {"inputs"'),
        ({"rows": []}, 'the event must be {"inputs"'),
        ("just a string", 'the event must be {"inputs"'),
    ],
)
def test_unusable_events_are_400(event: Any, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        events.parse(event)
    assert info.value.status == 400 and message in str(info.value)


def test_a_body_over_the_payload_limit_is_413_before_it_is_parsed() -> None:
    body = "[" + ",".join(["1"] * 600) + "]"
    with pytest.raises(BadRequest) as info:
        events.parse(v2(body), limit=1000)
    assert info.value.status == 413
    assert "MB per request" in str(info.value)
    assert events.parse(v2(body), limit=len(body)).inputs == [1] * 600


def test_direct_answer_is_plain_json_types() -> None:
    out = responses.ok({"y": np.array([[1.5, math.nan]], dtype="float32")}, as_http=False)
    assert out == {"outputs": {"y": [[1.5, None]]}}
    assert all(type(v) is float or v is None for v in out["outputs"]["y"][0])


def test_http_answer_has_status_headers_and_json_body() -> None:
    out = responses.ok({"ids": np.array([1, 2], dtype="int64")}, as_http=True)
    assert out["statusCode"] == 200
    assert out["headers"]["content-type"] == "application/json"
    assert orjson.loads(out["body"]) == {"outputs": {"ids": [1, 2]}}


def test_string_outputs_are_text() -> None:
    out = responses.ok({"w": np.array([b"caf\xc3\xa9", b"x"], dtype=object)}, as_http=False)
    assert out == {"outputs": {"w": ["café", "x"]}}


def test_errors_carry_status_message_and_field() -> None:
    exc = BadRequest("input 'x' has shape (2, 5); the model expects (batch, 4)", field="x")
    direct = responses.error(exc, as_http=False)
    assert direct == {
        "error": {"message": str(exc), "type": "BadRequest", "field": "x"},
        "statusCode": 400,
    }
    http = responses.error(BadRequest("too big", status=413), as_http=True)
    assert http["statusCode"] == 413
    assert orjson.loads(http["body"])["error"]["message"] == "too big"
