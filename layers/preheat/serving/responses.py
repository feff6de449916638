"""Build the handler's answers: a dict for direct invocations, an HTTP response otherwise.

Arrays go out as nested lists; strings as text. Non-finite floats become null (JSON has
no NaN), which orjson does for us.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from preheat.exceptions import BadRequest

JSON_HEADERS = {"content-type": "application/json"}


def _jsonable(value: np.ndarray) -> Any:
    if value.dtype.kind in "OSU":
        # tf.string outputs arrive as bytes objects; orjson serialises numbers, not these.
        return np.vectorize(_text, otypes=[object])(value).tolist() if value.size else []
    return value


def _text(v: object) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def outputs_payload(outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """`{"outputs": {name: nested lists}}`, already plain JSON types."""
    body = {"outputs": {k: _jsonable(np.asarray(v)) for k, v in outputs.items()}}
    # One C round trip turns numpy into lists and NaN into null, as any JSON encoder needs.
    result: dict[str, Any] = orjson.loads(dumps(body))
    return result


def error_payload(message: str, kind: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind}
    if field is not None:
        error["field"] = field
    return {"error": error}


def http(status: int, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": dict(JSON_HEADERS), "body": dumps(payload).decode()}


def ok(outputs: Mapping[str, np.ndarray], *, as_http: bool) -> dict[str, Any]:
    payload = outputs_payload(outputs)
    return http(200, payload) if as_http else payload


def failure(
    status: int, message: str, kind: str, field: str | None = None, *, as_http: bool
) -> dict[str, Any]:
    payload = error_payload(message, kind, field)
    if as_http:
        return http(status, payload)
    return {**payload, "statusCode": status}


def error(exc: BadRequest, *, as_http: bool) -> dict[str, Any]:
    """The answer to a request the model cannot take (4xx)."""
    return failure(exc.status, str(exc), type(exc).__name__, exc.field, as_http=as_http)


def describe(info: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to GET: what the model is and what it expects."""
    return http(200, info)
