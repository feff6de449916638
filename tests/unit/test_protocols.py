"""Each serving protocol, in and out, against a numpy model: no TensorFlow, no network."""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
import pytest

from preheat.artifact.manifest import Manifest, Signature, TensorSpec
from preheat.serving.protocols import Served, serve

MAIN = Signature(
    "serving_default",
    inputs=(TensorSpec("x", "float32", (None, 3)),),
    outputs=(TensorSpec("y", "float32", (None, 3)), TensorSpec("n", "int64", (None,))),
)
EMBED = Signature(
    "embed",
    inputs=(TensorSpec("x", "float32", (None, 3)),),
    outputs=(TensorSpec("sum", "float32", (None,)),),
)
WORDS = Signature(
    "serving_default",
    inputs=(TensorSpec("words", "string", (None,)),),
    outputs=(TensorSpec("ids", "int64", (None,)), TensorSpec("echo_bytes", "string", (None,))),
)


class FakeModel:
    """y = 2x + 1 and n = the row index; `embed` gives row sums; words → lengths."""

    def __init__(self, signature: Signature, others: tuple[Signature, ...] = ()) -> None:
        self._manifest = Manifest(
            name="m",
            version="3",
            runtime="tensorflow",
            precision="exact",
            files=(),
            signature=signature,
            signatures=others,
        )

    @property
    def signature(self) -> Signature:
        return self._manifest.signature

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "words" in inputs:
            w = inputs["words"]
            return {"ids": np.array([len(v) for v in w], dtype="int64"), "echo_bytes": w}
        x = inputs["x"]
        return {"y": x * 2 + 1, "n": np.arange(len(x), dtype="int64")}

    def predict_signature(
        self, key: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        assert key == "embed"
        return {"sum": inputs["x"].sum(axis=1)}


SERVED = Served(FakeModel(MAIN, (EMBED,)), labels=("prod",))
WORDS_SERVED = Served(FakeModel(WORDS))
X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]], dtype="float32")


def url_event(
    method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "headers": headers or {},
        "requestContext": {"http": {"method": method, "path": path}},
        "isBase64Encoded": isinstance(body, bytes),
    }
    if isinstance(body, bytes):
        event["body"] = base64.b64encode(body).decode()
    elif body is not None:
        event["body"] = body
    return event


def http(
    served: Served, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, Any]]:
    text = orjson.dumps(body).decode() if body is not None and not isinstance(body, bytes) else body
    response = serve(served, url_event(method, path, text, headers)).response
    raw = response["body"]
    if response.get("isBase64Encoded"):
        return response["statusCode"], base64.b64decode(raw), response["headers"]
    return response["statusCode"], orjson.loads(raw), response["headers"]


# --------------------------------------------------------------------------- TF Serving


def test_tfserving_row_format_answers_predictions_per_instance() -> None:
    status, body, _ = http(SERVED, "POST", "/v1/models/m:predict", {"instances": X.tolist()})
    assert status == 200
    assert body["predictions"][1] == {"y": (X[1] * 2 + 1).tolist(), "n": 1}


def test_tfserving_columnar_format_answers_outputs() -> None:
    status, body, _ = http(
        SERVED, "POST", "/v1/models/m/versions/3:predict", {"inputs": {"x": X.tolist()}}
    )
    assert status == 200
    assert body["outputs"]["y"] == (X * 2 + 1).tolist() and body["outputs"]["n"] == [0, 1]


def test_tfserving_signature_name_selects_another_signature_and_single_output_is_bare() -> None:
    status, body, _ = http(
        SERVED,
        "POST",
        "/v1/models/m/labels/prod:predict",
        {"signature_name": "embed", "inputs": X.tolist()},
    )
    assert status == 200 and body == {"outputs": pytest.approx(X.sum(axis=1).tolist())}
    status, body, _ = http(
        SERVED, "POST", "/v1/models/m:predict", {"signature_name": "nope", "instances": X.tolist()}
    )
    assert status == 400 and "'nope'" in body["error"]


def test_tfserving_b64_strings_in_and_bytes_outputs_out() -> None:
    words = [
        {"b64": base64.b64encode(b"\xffab").decode()},
        {"b64": base64.b64encode(b"cherry").decode()},
    ]
    status, body, _ = http(WORDS_SERVED, "POST", "/v1/models/m:predict", {"instances": words})
    assert status == 200
    assert body["predictions"][0] == {"ids": 3, "echo_bytes": words[0]}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/models/other:predict", 404),
        ("/v1/models/m/versions/9:predict", 404),
        ("/v1/models/m/labels/dev:predict", 404),
        ("/v1/models/m:classify", 501),
    ],
)
def test_tfserving_other_models_versions_and_labels_are_404(path: str, status: int) -> None:
    got, body, _ = http(SERVED, "POST", path, {"instances": X.tolist()})
    assert got == status and isinstance(body["error"], str)


def test_tfserving_status_and_metadata() -> None:
    status, body, _ = http(SERVED, "GET", "/v1/models/m")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body, _ = http(SERVED, "GET", "/v1/models/m/versions/3/metadata")
    defs = body["metadata"]["signature_def"]["signature_def"]
    assert set(defs) == {"serving_default", "embed"}
    x = defs["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT" and [d["size"] for d in x["tensor_shape"]["dim"]] == ["-1", "3"]


def test_tfserving_errors_are_one_string() -> None:
    status, body, _ = http(SERVED, "POST", "/v1/models/m:predict", {"instances": [[True, 1, 2]]})
    assert status == 400 and "boolean" in body["error"]


# --------------------------------------------------------------------------- OIP


def _binary_request(
    tensors: list[tuple[str, str, np.ndarray]], outputs: list[dict[str, Any]] | None = None
) -> tuple[bytes, dict[str, str]]:
    header: dict[str, Any] = {"inputs": []}
    blobs = []
    for name, datatype, arr in tensors:
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header["inputs"].append(
            {
                "name": name,
                "datatype": datatype,
                "shape": list(arr.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        blobs.append(raw)
    if outputs is not None:
        header["outputs"] = outputs
    head = orjson.dumps(header)
    return head + b"".join(blobs), {
        "inference-header-content-length": str(len(head)),
        "content-type": "application/octet-stream",
    }


def _split(body: bytes, headers: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    n = int(headers["Inference-Header-Content-Length"])
    return orjson.loads(body[:n]), body[n:]


def test_oip_json_infer() -> None:
    req = {
        "id": "7",
        "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": X.ravel().tolist()}],
    }
    status, body, _ = http(SERVED, "POST", "/v2/models/m/infer", req)
    assert status == 200 and body["id"] == "7" and body["model_version"] == "3"
    y = next(o for o in body["outputs"] if o["name"] == "y")
    assert y["datatype"] == "FP32" and y["shape"] == [2, 3]
    np.testing.assert_array_equal(np.array(y["data"], dtype="float32").reshape(2, 3), X * 2 + 1)


def test_oip_binary_in_and_binary_out() -> None:
    body, headers = _binary_request(
        [("x", "FP32", X)], [{"name": "y", "parameters": {"binary_data": True}}, {"name": "n"}]
    )
    status, raw, out_headers = http(SERVED, "POST", "/v2/models/m/versions/3/infer", body, headers)
    assert status == 200
    header, tail = _split(raw, out_headers)
    y, n = header["outputs"]
    assert y["parameters"]["binary_data_size"] == len(tail) == 24 and "data" not in y
    np.testing.assert_array_equal(np.frombuffer(tail, "<f4").reshape(2, 3), X * 2 + 1)
    assert n["data"] == [0, 1]


def test_oip_bytes_in_binary() -> None:
    words = [b"ab", b"cherry"]
    raw = b"".join(struct.pack("<I", len(w)) + w for w in words)
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "words",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    status, out, headers = http(
        WORDS_SERVED,
        "POST",
        "/v2/models/m/infer",
        head + raw,
        {"inference-header-content-length": str(len(head))},
    )
    assert status == 200
    header, tail = _split(out, headers)
    ids, echo = header["outputs"]
    assert ids["datatype"] == "INT64" and np.frombuffer(tail[:16], "<i8").tolist() == [2, 6]
    assert echo["datatype"] == "BYTES" and tail[16:] == raw


def test_oip_health_metadata_ready() -> None:
    assert http(SERVED, "GET", "/v2/health/live")[:2] == (200, {"live": True})
    assert http(SERVED, "GET", "/v2/health/ready")[:2] == (200, {"ready": True})
    assert http(SERVED, "GET", "/v2/models/m")[0] == 200
    _, meta, _ = http(SERVED, "GET", "/v2/models/m")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    assert http(SERVED, "GET", "/v2/models/m/versions/3/ready")[0] == 200
    assert http(SERVED, "GET", "/v2/models/zz/ready")[0] == 404


@pytest.mark.parametrize(
    ("tensors", "headers", "needle"),
    [
        (
            [("x", "FP32", X)],
            {"inference-header-content-length": "99999"},
            "Inference-Header-Content-Length",
        ),
        ([("x", "FP32", X[:, :2])], None, "input 'x'"),
        ([("x", "FP64", X.astype("float64"))], None, "input 'x' is FP64"),
        ([("x", "BF16", X)], None, "datatype 'BF16'"),
    ],
)
def test_oip_refusals_name_the_input(
    tensors: list[tuple[str, str, np.ndarray]], headers: dict[str, str] | None, needle: str
) -> None:
    body, h = _binary_request(tensors)
    status, out, _ = http(SERVED, "POST", "/v2/models/m/infer", body, {**h, **(headers or {})})
    assert status == 400 and needle in out["error"], out


def test_oip_binary_size_that_disagrees_with_the_shape_is_400() -> None:
    body, h = _binary_request([("x", "FP32", X)])
    head = orjson.loads(body[: int(h["inference-header-content-length"])])
    head["inputs"][0]["shape"] = [3, 3]
    new = orjson.dumps(head)
    status, out, _ = http(
        SERVED,
        "POST",
        "/v2/models/m/infer",
        new
        + body[
            len(orjson.dumps(orjson.loads(body[: int(h["inference-header-content-length"])]))) :
        ],
        {"inference-header-content-length": str(len(new))},
    )
    assert status == 400 and "input 'x' carries 24 bytes" in out["error"]


# --------------------------------------------------------------------------- direct forms


def test_direct_forms_mirror_the_request() -> None:
    native = serve(SERVED, {"inputs": {"x": X.tolist()}}).response
    assert native["outputs"]["n"] == [0, 1]
    tfs = serve(SERVED, {"instances": X.tolist()}).response
    assert tfs["predictions"][0]["n"] == 0
    oip = serve(
        SERVED,
        {
            "inputs": [
                {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": X.ravel().tolist()}
            ]
        },
    ).response
    assert oip["model_name"] == "m" and oip["outputs"][1]["data"] == [0, 1]
    raw = serve(
        SERVED,
        {
            "inputs": {
                "x": {
                    "b64": base64.b64encode(X.tobytes()).decode(),
                    "dtype": "float32",
                    "shape": [2, 3],
                }
            },
            "outputs": ["y"],
        },
    ).response
    y = raw["outputs"]["y"]
    assert list(raw["outputs"]) == ["y"] and y["dtype"] == "float32" and y["shape"] == [2, 3]
    np.testing.assert_array_equal(
        np.frombuffer(base64.b64decode(y["b64"]), "<f4").reshape(2, 3), X * 2 + 1
    )


def test_direct_errors_keep_their_form_and_carry_the_status() -> None:
    assert serve(SERVED, {"instances": "no"}).response["statusCode"] == 400
    bad = serve(
        SERVED, {"inputs": {"x": {"b64": "AAAA", "dtype": "float32", "shape": [2, 3]}}}
    ).response
    assert bad["statusCode"] == 400 and "input 'x' carries 3 bytes" in bad["error"]["message"]


def test_native_http_and_get_still_work() -> None:
    status, body, _ = http(SERVED, "POST", "/", {"inputs": {"x": X.tolist()}})
    assert status == 200 and body["outputs"]["n"] == [0, 1]
    status, body, _ = http(SERVED, "GET", "/")
    assert (
        status == 200
        and body["model"]["name"] == "m"
        and body["signatures"] == ["serving_default", "embed"]
    )
