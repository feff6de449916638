"""The Open Inference Protocol (KServe v2) over REST, with the binary tensor data extension.

    GET  /v2                                   server metadata
    GET  /v2/health/live, /v2/health/ready     health
    GET  /v2/models/NAME[/versions/V]          model metadata
    GET  /v2/models/NAME[/versions/V]/ready    model readiness
    POST /v2/models/NAME[/versions/V]/infer    inference

Tensors come as JSON (`data`, flat, row-major) or, with `Inference-Header-Content-Length`,
as raw bytes after the JSON header (`parameters.binary_data_size` per input). Outputs go
back as raw bytes when the request asks (`binary_data` per output, `binary_data_output`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import numpy as np

from preheat.artifact.manifest import Signature, TensorSpec
from preheat.exceptions import BadRequest
from preheat.runtimes.validate import coerce_input
from preheat.serving.protocols import tensors
from preheat.serving.protocols.base import (
    OCTET_STREAM,
    Call,
    Reply,
    Served,
    dumps,
    jsonable,
    parse_json,
    select_outputs,
)
from preheat.serving.protocols.tfserving import check_model

PATH = re.compile(
    r"/v2(?:/health/(?P<health>live|ready)"
    r"|/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<verb>/ready|/infer)?)?/?$"
)
HEADER_LENGTH = "inference-header-content-length"
# OIP datatype ↔ the manifest's dtype names.
DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "string",
}
_DATATYPE_OF = {v: k for k, v in DATATYPES.items()}
PLATFORMS = {"tensorflow": "tensorflow_savedmodel", "litert": "tensorflow_lite"}


def match(path: str) -> dict[str, str] | None:
    m = PATH.search(path)
    if m is None:
        return None
    return {k: unquote(v) for k, v in m.groupdict().items() if v is not None}


def datatype(dtype: str) -> str:
    return _DATATYPE_OF.get(dtype, dtype.upper())


def _dims(spec: TensorSpec) -> list[int]:
    return [-1] if spec.shape is None else [-1 if d is None else d for d in spec.shape]


def model_metadata(served: Served, sig: Signature) -> dict[str, Any]:
    def tensor(t: TensorSpec) -> dict[str, Any]:
        return {"name": t.name, "datatype": datatype(t.dtype), "shape": _dims(t)}

    return {
        "name": served.name,
        "versions": [served.version],
        "platform": PLATFORMS.get(served.runtime, served.runtime),
        "inputs": [tensor(t) for t in sig.inputs],
        "outputs": [tensor(t) for t in sig.outputs],
    }


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def _split(call: Call) -> tuple[Any, memoryview]:
    """The JSON header and the binary data after it."""
    if call.http is None:
        return call.json(), memoryview(b"")
    body = call.http.body
    length = call.http.headers.get(HEADER_LENGTH)
    if length is None:
        return parse_json(body, "the request body"), memoryview(b"")
    if not length.strip().isdigit() or int(length) > len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {length[:20]!r} but the body has {len(body)} "
            "bytes; send the JSON header's length in bytes",
            field="Inference-Header-Content-Length",
        )
    n = int(length)
    return parse_json(body[:n], "the JSON header"), memoryview(body)[n:]


def _expected_dtype(sig: Signature, name: str) -> str | None:
    spec = sig.input(name)
    return spec.dtype if spec is not None else None


def _check_datatype(name: str, sent: str, want: str | None) -> None:
    if want is None or want == DATATYPES[sent]:
        return
    src, dst = np.dtype(object if sent == "BYTES" else DATATYPES[sent]), None
    if want != "string":
        dst = np.dtype(want)
    if dst is None or src.kind == "O" or not np.can_cast(src, dst, "safe"):
        raise BadRequest(
            f"input {name!r} is {sent}; the model expects {datatype(want)}, send it as that",
            field=name,
        )


def _input(
    tensor: object, index: int, sig: Signature, binary: memoryview, offset: int
) -> tuple[str, np.ndarray, int]:
    if not isinstance(tensor, Mapping):
        raise BadRequest(f"inputs[{index}] must be an object with name, shape, datatype")
    name = tensor.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"inputs[{index}] has no name; give every input its name")
    sent = tensor.get("datatype")
    if sent not in DATATYPES:
        raise BadRequest(
            f"input {name!r} has datatype {str(sent)[:12]!r}; use one of {', '.join(DATATYPES)}",
            field=name,
        )
    _check_datatype(name, sent, _expected_dtype(sig, name))
    shape = tensors.parse_shape(name, tensor.get("shape"))
    dtype = tensors.dtype_of(name, DATATYPES[sent])
    params = _mapping(tensor.get("parameters"), f"input {name!r}'s parameters")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"input {name!r}: binary_data_size must be a byte count", field=name)
        if "data" in tensor:
            raise BadRequest(
                f"input {name!r} has both data and binary_data_size; send one", field=name
            )
        if offset + size > len(binary):
            raise BadRequest(
                f"input {name!r} says binary_data_size {size}, but only "
                f"{max(len(binary) - offset, 0)} bytes of binary data remain for it",
                field=name,
            )
        arr = tensors.decode(name, binary[offset : offset + size], dtype, shape)
        return name, arr, offset + size
    if "data" not in tensor:
        raise BadRequest(f"input {name!r} has no data; send data or binary_data_size", field=name)
    arr = coerce_input(TensorSpec(name, DATATYPES[sent], None), tensor["data"])
    count = math.prod(shape)
    if arr.size != count:
        raise BadRequest(
            f"input {name!r} holds {arr.size} values; its shape {list(shape)} needs {count}",
            field=name,
        )
    return name, arr.reshape(shape), offset


def _requested(req: Mapping[str, Any], binary_ok: bool) -> tuple[list[str] | None, set[str]]:
    params = _mapping(req.get("parameters"), "parameters")
    all_binary = binary_ok and params.get("binary_data_output") is True
    outputs = req.get("outputs")
    if outputs is None:
        return None, ({"*"} if all_binary else set())
    if not isinstance(outputs, list):
        raise BadRequest("outputs must be a list of {name, parameters}")
    names: list[str] = []
    binary: set[str] = set()
    for i, out in enumerate(outputs):
        if not isinstance(out, Mapping) or not isinstance(out.get("name"), str):
            raise BadRequest(f"outputs[{i}] must be an object with a name")
        oparams = _mapping(out.get("parameters"), f"output {out['name']!r}'s parameters")
        if oparams.get("classification"):
            raise BadRequest("classification outputs are not served; ask for the tensor")
        names.append(out["name"])
        if binary_ok and (all_binary or oparams.get("binary_data") is True):
            binary.add(out["name"])
    return names, binary


def infer(served: Served, call: Call) -> Reply:
    req, binary = _split(call)
    if not isinstance(req, Mapping):
        raise BadRequest('the request must be a JSON object with "inputs"')
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest(
            '"inputs" must be a non-empty list of tensors {name, shape, datatype, data}'
        )
    params = _mapping(req.get("parameters"), "parameters")
    key = params.get("signature_name")
    if key is not None and not isinstance(key, str):
        raise BadRequest("parameters.signature_name must be a string", field="signature_name")
    sig = served.signature(key)
    named: dict[str, np.ndarray] = {}
    offset = 0
    for i, tensor in enumerate(inputs):
        name, arr, offset = _input(tensor, i, sig, binary, offset)
        if name in named:
            raise BadRequest(f"input {name!r} is sent twice", field=name)
        named[name] = arr
    if offset != len(binary):
        raise BadRequest(
            f"{len(binary)} bytes follow the JSON header but the inputs' binary_data_size add "
            f"up to {offset}; fix Inference-Header-Content-Length or the sizes"
        )
    wanted, binary_out = _requested(req, binary_ok=call.http is not None)
    _, outputs = served.predict(named, key)
    chosen = select_outputs(sig, outputs, wanted)
    answer: dict[str, Any] = {"model_name": served.name, "model_version": served.version}
    if isinstance(req.get("id"), str):
        answer["id"] = req["id"]
    tails: list[bytes] = []
    answer["outputs"] = []
    for name, value in chosen.items():
        out: dict[str, Any] = {
            "name": name,
            "datatype": datatype(tensors.dtype_name(value)),
            "shape": list(value.shape),
        }
        if "*" in binary_out or name in binary_out:
            raw = tensors.encode(value)
            out["parameters"] = {"binary_data_size": len(raw)}
            tails.append(raw)
        else:
            out["data"] = jsonable(value.reshape(-1))
        answer["outputs"].append(out)
    if not tails:
        return Reply(200, answer)
    header = dumps(answer)
    return Reply(
        200,
        binary=b"".join([header, *tails]),
        headers={
            "Content-Type": OCTET_STREAM,
            "Inference-Header-Content-Length": str(len(header)),
        },
    )


class OpenInference:
    name = "oip"

    def handle(self, served: Served, call: Call, params: Mapping[str, str]) -> Reply:
        if call.http is None:
            return infer(served, call)
        method = call.http.method
        verb = params.get("verb")
        if verb == "/infer":
            check_model(served, params)
            if method != "POST":
                raise BadRequest(f"{method} is not allowed for /infer; use POST", status=405)
            return infer(served, call)
        if method not in ("GET", "HEAD"):
            raise BadRequest(f"{method} is not allowed here; use GET", status=405)
        if "health" in params:
            return Reply(200, {params["health"]: True})
        if "name" not in params:
            return Reply(
                200, {"name": "preheat", "version": "1", "extensions": ["binary_tensor_data"]}
            )
        check_model(served, params)
        if verb == "/ready":
            return Reply(200, {"name": served.name, "ready": True})
        return Reply(200, model_metadata(served, served.signature(None)))

    def error(self, status: int, message: str, kind: str, field: str | None) -> Reply:
        return Reply(status, {"error": message})


PROTOCOL = OpenInference()
