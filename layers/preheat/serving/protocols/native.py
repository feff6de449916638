"""preheat's own form: `{"inputs": {name: nested lists}}` (or a bare list) → `{"outputs": ...}`.

It is TF Serving's columnar request without the single-output shortcut in the answer;
`{"b64": ...}` leaves are read as bytes for string inputs, as TF Serving reads them.
A GET on a path no other protocol claims describes the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from preheat.exceptions import BadRequest
from preheat.serving.events import inputs_of
from preheat.serving.protocols.base import Call, Reply, Served, decode_b64_leaves, jsonable
from preheat.serving.responses import error_payload


def model_info(served: Served) -> dict[str, Any]:
    sig = served.signatures[served.default_key]
    return {
        "model": {"name": served.name, "version": served.version, "runtime": served.runtime},
        "inputs": [{"name": t.name, "dtype": t.dtype, "shape": t.shape} for t in sig.inputs],
        "outputs": [{"name": t.name, "dtype": t.dtype, "shape": t.shape} for t in sig.outputs],
        "signatures": list(served.signatures),
    }


class Native:
    name = "native"

    def handle(self, served: Served, call: Call, params: Mapping[str, str]) -> Reply:
        if call.http is not None and call.http.method == "GET":
            return Reply(200, model_info(served))
        if call.http is not None and not call.http.body:
            raise BadRequest('the request has no body; send JSON such as {"inputs": {...}}')
        where = "the event" if call.http is None else "the request body"
        inputs = inputs_of(call.json(), where)
        sig = served.signature(None)
        if isinstance(inputs, Mapping):
            strings = {t.name for t in sig.inputs if t.dtype == "string"}
            inputs = {k: decode_b64_leaves(k, v) if k in strings else v for k, v in inputs.items()}
        _, outputs = served.predict(inputs)
        return Reply(200, {"outputs": {k: jsonable(v) for k, v in outputs.items()}})

    def error(self, status: int, message: str, kind: str, field: str | None) -> Reply:
        return Reply(status, error_payload(message, kind, field))


PROTOCOL = Native()
