"""Recognise what invoked the function and pull the request out of it.

Three shapes arrive: a direct invocation (`{"inputs": ...}` or a bare list), an API Gateway
REST (v1) event, and an HTTP API (v2) or Function URL event, whose body may be base64.
`http_request` gives the HTTP parts (method, path, headers, decoded body) the serving
protocols route and read by.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from preheat import constants as c
from preheat.exceptions import BadRequest

INPUTS_KEY = "inputs"
_HTTP_KEYS = ("httpMethod", "requestContext", "routeKey", "rawPath")


@dataclass(frozen=True)
class Request:
    """A parsed request: its inputs (not yet validated) and how to answer it."""

    inputs: Any
    http: bool
    # "POST" for a prediction, "GET" to describe the model (HTTP only).
    method: str = "POST"


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as an event carries it: header names lower-case, body decoded."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


def is_http(event: object) -> bool:
    return isinstance(event, Mapping) and any(k in event for k in _HTTP_KEYS)


def http_method(event: Mapping[str, Any]) -> str:
    """The HTTP verb of a v1 (httpMethod) or v2/Function URL (requestContext.http) event."""
    method = event.get("httpMethod")
    if not isinstance(method, str):
        ctx = event.get("requestContext")
        http = ctx.get("http") if isinstance(ctx, Mapping) else None
        method = http.get("method") if isinstance(http, Mapping) else None
    return method.upper() if isinstance(method, str) else "POST"


def http_path(event: Mapping[str, Any]) -> str:
    """The request's path, without the API Gateway stage a v2 `rawPath` may begin with."""
    path = event.get("rawPath")
    if not isinstance(path, str):
        path = event.get("path")
    if not isinstance(path, str):
        return "/"
    ctx = event.get("requestContext")
    stage = ctx.get("stage") if isinstance(ctx, Mapping) else None
    if (
        "rawPath" in event
        and isinstance(stage, str)
        and stage not in ("", "$default")
        and path.startswith(f"/{stage}/")
    ):
        path = path[len(stage) + 1 :]
    return path


def http_headers(event: Mapping[str, Any]) -> dict[str, str]:
    """Header names lower-case (v1 events keep the client's case; v2 ones are lower-case)."""
    headers = event.get("headers")
    if not isinstance(headers, Mapping):
        return {}
    return {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)}


def http_request(
    event: Mapping[str, Any], *, limit: int = c.LAMBDA_PAYLOAD_LIMIT_BYTES
) -> HttpRequest:
    """Method, path, headers and the decoded body (empty when there is none)."""
    method = http_method(event)
    body = event.get("body")
    raw = b"" if body is None or body == "" else _body_bytes(event, limit)
    return HttpRequest(method=method, path=http_path(event), headers=http_headers(event), body=raw)


def _body_bytes(event: Mapping[str, Any], limit: int) -> bytes:
    body = event.get("body")
    if body is None or body == "":
        raise BadRequest('the request has no body; send JSON such as {"inputs": {...}}')
    if not isinstance(body, str | bytes):
        raise BadRequest("the request body must be a string (JSON, or base64 with isBase64Encoded)")
    # Refuse before decoding: a body over Lambda's payload limit is never read further.
    if len(body) > limit:
        raise BadRequest(
            f"the request body is {len(body) / 1e6:.1f} MB; Lambda accepts at most "
            f"{limit / 1e6:.1f} MB per request, send fewer rows per request",
            status=413,
        )
    raw = body.encode() if isinstance(body, str) else body
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the request body is marked base64 but is not valid base64") from None
    return raw


def inputs_of(payload: Any, where: str) -> Any:
    """The inputs of preheat's own form: `{"inputs": ...}` or a bare list."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, Mapping) and INPUTS_KEY in payload:
        return payload[INPUTS_KEY]
    raise BadRequest(
        f'{where} must be {{"inputs": {{name: array, ...}}}} or a bare list for a '
        "single-input model"
    )


def parse(event: Any, *, limit: int = c.LAMBDA_PAYLOAD_LIMIT_BYTES) -> Request:
    """The request an event carries; BadRequest (400, or 413 for size) if it carries none."""
    if is_http(event):
        method = http_method(event)
        if method == "GET":
            return Request(inputs=None, http=True, method="GET")
        raw = _body_bytes(event, limit)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the request body is not valid JSON: {exc}") from None
        return Request(inputs=inputs_of(payload, "the request body"), http=True)
    return Request(inputs=inputs_of(event, "the event"), http=False)
