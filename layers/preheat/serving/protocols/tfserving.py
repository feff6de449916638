"""TensorFlow Serving's REST API: predict (row and columnar), model status and metadata.

    POST /v1/models/NAME[/versions/V|/labels/L]:predict
    GET  /v1/models/NAME[/versions/V|/labels/L]            status
    GET  /v1/models/NAME[/versions/V|/labels/L]/metadata   signature defs

Row requests (`instances`) are answered with `predictions`, columnar ones (`inputs`) with
`outputs`; string inputs may be `{"b64": ...}` and outputs named `*_bytes` are sent that way.
Errors are `{"error": "..."}` with the HTTP status TF Serving gives their gRPC code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import numpy as np

from preheat.artifact.manifest import Signature, TensorSpec
from preheat.exceptions import BadRequest
from preheat.serving.protocols.base import Call, Reply, Served, decode_b64_leaves, jsonable

PATH = re.compile(
    r"/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>:[A-Za-z]+|/metadata)?/?$"
)
_DT = {
    "float16": "DT_HALF",
    "bfloat16": "DT_BFLOAT16",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "bool": "DT_BOOL",
    "string": "DT_STRING",
    "complex64": "DT_COMPLEX64",
    "complex128": "DT_COMPLEX128",
}
BYTES_SUFFIX = "_bytes"


def match(path: str) -> dict[str, str] | None:
    m = PATH.search(path)
    if m is None:
        return None
    return {k: unquote(v) for k, v in m.groupdict().items() if v is not None}


def check_model(served: Served, params: Mapping[str, str]) -> None:
    """404 for another model, version or label, as TF Serving answers a servable it lacks."""
    name = params.get("name")
    if name is not None and name != served.name:
        raise BadRequest(
            f"model {name!r} is not served here; this function serves {served.name!r}",
            status=404,
        )
    version = params.get("version")
    if version is not None and version != served.version:
        raise BadRequest(
            f"version {version!r} of {served.name!r} is not served here; this function serves "
            f"version {served.version!r}",
            status=404,
        )
    label = params.get("label")
    if label is not None and label not in served.labels:
        known = ", ".join(map(repr, served.labels)) or "none"
        raise BadRequest(
            f"label {label!r} of {served.name!r} is not served here (labels: {known}); "
            f"ask for /versions/{served.version}",
            status=404,
        )


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    shape: dict[str, Any] = {"dim": [], "unknown_rank": spec.shape is None}
    for d in spec.shape or ():
        shape["dim"].append({"size": str(-1 if d is None else d), "name": ""})
    return {"dtype": _DT.get(spec.dtype, "DT_INVALID"), "tensor_shape": shape, "name": spec.name}


def _signature_def(sig: Signature) -> dict[str, Any]:
    return {
        "inputs": {t.name: _tensor_info(t) for t in sig.inputs},
        "outputs": {t.name: _tensor_info(t) for t in sig.outputs},
        "method_name": "tensorflow/serving/predict",
    }


def status(served: Served) -> dict[str, Any]:
    return {
        "model_version_status": [
            {
                "version": served.version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def metadata(served: Served) -> dict[str, Any]:
    return {
        "model_spec": {"name": served.name, "signature_name": "", "version": served.version},
        "metadata": {
            "signature_def": {
                "signature_def": {k: _signature_def(s) for k, s in served.signatures.items()}
            }
        },
    }


def _is_b64(value: object) -> bool:
    return isinstance(value, Mapping) and set(value) == {"b64"}


def _named_rows(sig: Signature, instances: list[Any]) -> dict[str, Any]:
    names = [t.name for t in sig.inputs]
    if all(isinstance(row, Mapping) and not _is_b64(row) for row in instances):
        keys = set(instances[0]) if instances else set(names)
        for i, row in enumerate(instances):
            if set(row) != keys:
                raise BadRequest(
                    f"instance {i} names inputs {sorted(map(str, row))}, instance 0 names "
                    f"{sorted(map(str, keys))}; every instance must name the same inputs"
                )
        return {k: [row[k] for row in instances] for k in keys}
    if len(names) != 1:
        raise BadRequest(
            f"this signature has {len(names)} inputs ({', '.join(names)}); send each instance "
            "as an object of input name to value"
        )
    return {names[0]: instances}


def _named_columns(sig: Signature, inputs: Any) -> Any:
    names = [t.name for t in sig.inputs]
    if isinstance(inputs, Mapping) and not _is_b64(inputs):
        return inputs
    if len(names) != 1:
        raise BadRequest(
            f'this signature has {len(names)} inputs ({", ".join(names)}); send "inputs" as an '
            "object of input name to value"
        )
    return {names[0]: inputs}


def _out(name: str, value: np.ndarray) -> Any:
    return jsonable(value, b64=name.endswith(BYTES_SUFFIX))


def _predictions(outputs: Mapping[str, np.ndarray]) -> Any:
    if len(outputs) == 1:
        ((name, value),) = outputs.items()
        return _out(name, value)
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in outputs.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise BadRequest(
            "the outputs do not share a batch size "
            f"({', '.join(f'{k}: {v}' for k, v in sizes.items())}), which the row format "
            'needs; send the request in columnar form ("inputs") instead'
        )
    columns = {k: _out(k, v) for k, v in outputs.items()}
    as_lists = {k: (c.tolist() if isinstance(c, np.ndarray) else c) for k, c in columns.items()}
    (batch,) = set(sizes.values())
    return [{k: as_lists[k][i] for k in outputs} for i in range(batch or 0)]


def predict(served: Served, body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise BadRequest(
            'the request body must be a JSON object with "instances" (row format) or '
            '"inputs" (columnar format)'
        )
    key = body.get("signature_name")
    if key is not None and not isinstance(key, str):
        raise BadRequest("signature_name must be a string", field="signature_name")
    sig = served.signature(key)
    if "instances" in body and "inputs" in body:
        raise BadRequest('send either "instances" (row format) or "inputs" (columnar), not both')
    row = "instances" in body
    if row:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise BadRequest('"instances" must be a list, one entry per example')
        named = _named_rows(sig, instances)
    elif "inputs" in body:
        named = _named_columns(sig, body["inputs"])
    else:
        raise BadRequest(
            'the request body has neither "instances" (row format) nor "inputs" (columnar format)'
        )
    strings = {t.name for t in sig.inputs if t.dtype == "string"}
    named = {k: decode_b64_leaves(k, v) if k in strings else v for k, v in named.items()}
    _, outputs = served.predict(named, key)
    if row:
        return {"predictions": _predictions(outputs)}
    if len(outputs) == 1:
        ((name, value),) = outputs.items()
        return {"outputs": _out(name, value)}
    return {"outputs": {k: _out(k, v) for k, v in outputs.items()}}


class TFServing:
    name = "tfserving"

    def handle(self, served: Served, call: Call, params: Mapping[str, str]) -> Reply:
        if call.http is None:
            return Reply(200, predict(served, call.json()))
        check_model(served, params)
        verb = params.get("verb")
        method = call.http.method
        if verb == ":predict":
            if method != "POST":
                raise BadRequest(f"{method} is not allowed for :predict; use POST", status=405)
            return Reply(200, predict(served, call.json()))
        if verb in (None, "/metadata"):
            if method != "GET":
                raise BadRequest(f"{method} is not allowed here; use GET", status=405)
            return Reply(200, status(served) if verb is None else metadata(served))
        if verb in (":classify", ":regress"):
            raise BadRequest(
                f"{verb[1:]} (tf.Example input) is not served by preheat; use :predict",
                status=501,
            )
        raise BadRequest(f"unknown method {verb!r}; use :predict", status=404)

    def error(self, status: int, message: str, kind: str, field: str | None) -> Reply:
        return Reply(status, {"error": message})


PROTOCOL = TFServing()
