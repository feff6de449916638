"""The request forms the inference function speaks, one module each, and the router.

HTTP events (Function URL, API Gateway v1/v2) are routed by path: `/v1/models/...` is
TF Serving's REST API, `/v2/...` the Open Inference Protocol, anything else preheat's own
form. Direct invocations are routed by the shape of their body. Every answer, error
included, comes back in the form of its request.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from preheat import constants as c
from preheat.exceptions import BadRequest, first_line
from preheat.serving import events
from preheat.serving.protocols import native, oip, raw, tfserving
from preheat.serving.protocols.base import JSON, Call, Reply, Served, dumps

__all__ = ["Outcome", "Served", "ServingProtocol", "detect", "serve"]


class ServingProtocol(Protocol):
    name: str

    def handle(self, served: Served, call: Call, params: Mapping[str, str]) -> Reply: ...

    def error(self, status: int, message: str, kind: str, field: str | None) -> Reply: ...


@dataclass(frozen=True)
class Outcome:
    """What the handler returns, and what it logs about it."""

    response: Any
    status: int
    protocol: str
    error: BaseException | None = None
    # The model call's time when the request reached the model (see Served.predict).
    predict_ms: float | None = None


def detect(payload: object) -> ServingProtocol:
    """The protocol a JSON body (or a direct invocation's event) is written in."""
    if isinstance(payload, Mapping):
        if "instances" in payload or "signature_name" in payload:
            return tfserving.PROTOCOL
        inputs = payload.get("inputs")
        if isinstance(inputs, list) and any(
            isinstance(t, Mapping) and "datatype" in t for t in inputs
        ):
            return oip.PROTOCOL
        if raw.is_raw(payload):
            return raw.PROTOCOL
    return native.PROTOCOL


def _route(path: str) -> tuple[ServingProtocol, dict[str, str]] | None:
    params = tfserving.match(path)
    if params is not None:
        return tfserving.PROTOCOL, params
    params = oip.match(path)
    if params is not None:
        return oip.PROTOCOL, params
    return None


def to_http(reply: Reply) -> dict[str, Any]:
    if reply.binary is not None:
        return {
            "statusCode": reply.status,
            "headers": dict(reply.headers),
            "body": base64.b64encode(reply.binary).decode("ascii"),
            "isBase64Encoded": True,
        }
    return {
        "statusCode": reply.status,
        "headers": {"content-type": JSON, **reply.headers},
        "body": dumps(reply.payload).decode(),
    }


def to_direct(reply: Reply) -> Any:
    # One C round trip turns numpy into lists and NaN into null, as the runtime's JSON needs.
    payload = orjson.loads(dumps(reply.payload))
    if reply.status != 200 and isinstance(payload, dict):
        payload["statusCode"] = reply.status
    return payload


def serve(served: Served, event: Any, *, limit: int = c.LAMBDA_PAYLOAD_LIMIT_BYTES) -> Outcome:
    """Answer one event in the form it was asked; never raises."""
    is_http = events.is_http(event)
    params: dict[str, str] = {}
    if is_http:
        routed = _route(events.http_path(event))
        protocol, params = routed if routed is not None else (native.PROTOCOL, {})
    else:
        routed = None
        protocol = detect(event)
    error: BaseException | None = None
    served.last_predict_ms = None
    try:
        call = Call(http=events.http_request(event, limit=limit) if is_http else None, event=event)
        http = call.http
        if routed is None and http is not None and http.method != "GET" and http.body:
            protocol = detect(call.json())
        reply = protocol.handle(served, call, params)
    except BadRequest as exc:
        error = exc
        reply = protocol.error(exc.status, str(exc), type(exc).__name__, exc.field)
    except Exception as exc:  # the environment must live on whatever one request does
        error = exc
        reply = protocol.error(
            500,
            f"the model could not answer this request: {first_line(exc)}",
            "InferenceError",
            None,
        )
    response = to_http(reply) if is_http else to_direct(reply)
    return Outcome(response, reply.status, protocol.name, error, served.last_predict_ms)
