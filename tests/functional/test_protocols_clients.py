"""Real clients call the real inference function through the local Function URL and boto3.

tritonclient speaks the Open Inference Protocol (JSON and binary tensors), `requests` sends
TF Serving's documented REST requests, boto3 invokes with every direct form. One emulator
serves three pushed models: `two_signature` (float32, two signatures), `string_vocab` and a
tiny one on 224x224x3 images, for the payload sizes of an image model.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.tools.emulator.function_url import FunctionUrl
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push
from tests.fixtures.emulator import lambda_client
from tests.fixtures.models import BuiltModel, _describe

pytestmark = pytest.mark.slow

FUNCTION_DIR = Path(__file__).resolve().parents[2] / "functions" / "inference"
X = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 6.25]], dtype="float32")


@dataclass
class Served:
    emulator: Emulator
    urls: dict[str, str]


def _function(name: str, model: BuiltModel, s3: S3Server, bucket: str) -> FunctionConfig:
    uri = push(
        model.path, f"s3://{bucket}/store", name=name, version="1", s3_client=s3.client()
    ).uri
    return FunctionConfig(
        name=name,
        code_dir=FUNCTION_DIR,
        handler="app.handler",
        env={**s3.env(), "PREHEAT_MODEL_URI": str(uri), "TF_CPP_MIN_LOG_LEVEL": "2"},
        memory_mb=1024,
        timeout_s=60,
        init_timeout_s=120,  # TensorFlow's import on a shared 2-core test machine
    )


@pytest.fixture(scope="module")
def image_model(tmp_path_factory: pytest.TempPathFactory) -> BuiltModel:
    """ResNet50's input shape at a few hundred bytes of weights: pooling, then 3 scores."""
    import keras

    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input(shape=(224, 224, 3), dtype="float32", name="image"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    out = tmp_path_factory.mktemp("models") / "image"
    model.export(str(out), verbose=False)
    return _describe(out)


@pytest.fixture(scope="module")
def served(
    two_signature_model: BuiltModel,
    string_vocab_model: BuiltModel,
    image_model: BuiltModel,
    s3_server: S3Server,
) -> Iterator[Served]:
    bucket = f"protocols-{os.getpid()}"
    s3_server.client().create_bucket(Bucket=bucket)
    functions = [
        _function("twosig", two_signature_model, s3_server, bucket),
        _function("words", string_vocab_model, s3_server, bucket),
        _function("images", image_model, s3_server, bucket),
    ]
    with (
        tempfile.TemporaryDirectory() as work,
        Emulator(functions, workdir=Path(work)) as emu,
        FunctionUrl(emu, "twosig") as twosig,
        FunctionUrl(emu, "words") as words,
        FunctionUrl(emu, "images") as images,
    ):
        yield Served(emu, {"twosig": twosig.url, "words": words.url, "images": images.url})


def _triton(url: str) -> Any:
    import tritonclient.http as httpclient

    return httpclient.InferenceServerClient(url=url.removeprefix("http://").rstrip("/"))


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_health_metadata_and_infer(
    served: Served, two_signature_model: BuiltModel, binary: bool
) -> None:
    import tritonclient.http as httpclient

    client = _triton(served.urls["twosig"])
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("twosig")
    meta = client.get_model_metadata("twosig")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    tensor = httpclient.InferInput("x", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=binary)
    result = client.infer(
        "twosig", [tensor], outputs=[httpclient.InferRequestedOutput("y", binary_data=binary)]
    )
    want = two_signature_model.reference({"x": X})["y"]
    np.testing.assert_array_equal(result.as_numpy("y"), want)
    # Without named outputs, tritonclient asks for every output in binary.
    result = client.infer("twosig", [tensor])
    np.testing.assert_array_equal(result.as_numpy("y"), want)


def test_tritonclient_unknown_model_is_refused(served: Served) -> None:
    from tritonclient.utils import InferenceServerException

    client = _triton(served.urls["twosig"])
    assert not client.is_model_ready("other")
    with pytest.raises(InferenceServerException, match="not served"):
        client.get_model_metadata("other")


def test_tf_serving_documented_requests(served: Served, two_signature_model: BuiltModel) -> None:
    base = served.urls["twosig"] + "v1/models/twosig"
    want = two_signature_model.reference({"x": X})["y"]
    row = requests.post(f"{base}:predict", json={"instances": X.tolist()}, timeout=60)
    assert row.status_code == 200 and np.allclose(row.json()["predictions"], want)
    col = requests.post(
        f"{base}/versions/1:predict",
        json={"signature_name": "embed", "inputs": {"x": X.tolist()}},
        timeout=60,
    )
    embed = two_signature_model.reference({"x": X}, "embed")["sum"]
    assert col.status_code == 200 and np.allclose(col.json()["outputs"], embed)
    status = requests.get(base, timeout=60).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    meta = requests.get(f"{base}/metadata", timeout=60).json()
    assert set(meta["metadata"]["signature_def"]["signature_def"]) == {"serving_default", "embed"}
    missing = requests.post(
        served.urls["twosig"] + "v1/models/other:predict", json={"instances": []}, timeout=60
    )
    assert missing.status_code == 404 and isinstance(missing.json()["error"], str)


def test_tf_serving_b64_strings(served: Served, string_vocab_model: BuiltModel) -> None:
    words = ["banana", "kiwi", "apple"]
    body = {"instances": [{"b64": base64.b64encode(w.encode()).decode()} for w in words]}
    answer = requests.post(served.urls["words"] + "v1/models/words:predict", json=body, timeout=60)
    want = string_vocab_model.reference({"words": np.array([w.encode() for w in words])})["ids"]
    assert answer.status_code == 200 and answer.json()["predictions"] == want.tolist()


def test_boto3_invoke_with_every_direct_form(
    served: Served, two_signature_model: BuiltModel
) -> None:
    client = lambda_client(served.emulator.endpoint_url)
    want = two_signature_model.reference({"x": X})["y"]
    raw_x = {"b64": base64.b64encode(X.tobytes()).decode(), "dtype": "float32", "shape": [2, 3]}
    forms: dict[str, dict[str, Any]] = {
        "native": {"inputs": {"x": X.tolist()}},
        "tfserving": {"instances": X.tolist()},
        "oip": {
            "inputs": [
                {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": X.ravel().tolist()}
            ]
        },
        "raw": {"inputs": {"x": raw_x}},
    }
    answers = {}
    for form, payload in forms.items():
        response = client.invoke(FunctionName="twosig", Payload=json.dumps(payload))
        answers[form] = json.loads(response["Payload"].read())
    np.testing.assert_allclose(answers["native"]["outputs"]["y"], want)
    np.testing.assert_allclose(answers["tfserving"]["predictions"], want)
    (oip_y,) = answers["oip"]["outputs"]
    np.testing.assert_allclose(np.reshape(oip_y["data"], oip_y["shape"]), want)
    y = answers["raw"]["outputs"]["y"]
    np.testing.assert_array_equal(
        np.frombuffer(base64.b64decode(y["b64"]), "<f4").reshape(y["shape"]), want
    )


def test_the_url_maps_plain_and_error_answers_as_aws_does(served: Served) -> None:
    answer = requests.get(served.urls["twosig"] + "?a=1&a=2", timeout=60)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json()["model"]["name"] == "twosig"
    too_big = requests.post(served.urls["twosig"], data=b"0" * (6 * 1024 * 1024 + 1), timeout=60)
    assert too_big.status_code == 413


def test_six_224x224x3_images_fit_one_oip_binary_request(
    served: Served, image_model: BuiltModel
) -> None:
    from preheat.tools.bench.protocols import oip_binary, read_oip_binary

    (spec,) = image_model.signature.inputs
    one = np.zeros((1, 224, 224, 3), dtype="float32")
    # One image: its 602,112 raw bytes and a JSON header, well under 1.1 MB.
    assert len(oip_binary("images", {spec.name: one}).body) <= 1.1e6
    rng = np.random.default_rng(0)
    batch = (rng.integers(0, 256, size=(6, 224, 224, 3)) / 256).astype("float32")
    req = oip_binary("images", {spec.name: batch})
    # Base64 makes the event a third larger than the body; it must still fit Lambda's 6 MB.
    assert len(req.body) * 4 / 3 < 6 * 1024 * 1024
    answer = requests.post(
        served.urls["images"].rstrip("/") + req.path, data=req.body, headers=req.headers, timeout=60
    )
    assert answer.status_code == 200, answer.text[:200]
    want = image_model.reference({spec.name: batch})
    got = read_oip_binary(
        answer.content, answer.headers.get("Inference-Header-Content-Length"), want
    )
    assert set(got) == set(want)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6)
