"""The bench's protocol dimension: requests as clients send them, answers read back, the
summary and table per strategy and protocol, and the predict lines of the function's log."""

from __future__ import annotations

import base64

import numpy as np
import orjson

from preheat.serving.protocols import oip, tensors
from preheat.tools.bench.logs import predictions
from preheat.tools.bench.protocols import (
    agrees,
    oip_binary,
    read_oip_binary,
    read_tf_serving,
    tf_serving,
)
from preheat.tools.bench.records import (
    BenchResult,
    ColdStart,
    NetworkInfo,
    Parity,
    ProtocolRun,
    StrategyRun,
)
from preheat.tools.bench.summary import result_dict, summarize, table

EXACT = Parity(0.0, 0.0, 1.0, True, 2)
X = np.arange(6, dtype="float32").reshape(1, 2, 3) / 256


def _cold(i: int, protocols: list[ProtocolRun], error: str | None = None) -> ColdStart:
    return ColdStart(
        strategy="preheat-tf",
        index=i,
        environment=f"e{i}",
        init_ms=1000.0,
        first_response_ms=1100.0,
        warm_ms=[30.0, 32.0],
        parity=EXACT,
        protocols=protocols,
        error=error,
    )


def _run(protocol: str, warm: list[float], predict: list[float], size: int) -> ProtocolRun:
    return ProtocolRun(
        protocol,
        request_bytes=[size] * len(warm),
        warm_ms=warm,
        predict_ms=predict,
        parity=EXACT,
    )


def _result() -> BenchResult:
    tf = StrategyRun("preheat-tf", "p")
    tf.cold_starts = [
        _cold(
            0,
            [
                _run("json", [30.0, 32.0], [10.0, 11.0], 3_150_000),
                _run("oip-binary", [12.0, 14.0], [10.0, 12.0], 602_400),
                _run("tfserving", [40.0, 44.0], [9.0, 13.0], 3_100_000),
            ],
        ),
        _cold(
            1,
            [
                _run("json", [34.0, 36.0], [12.0, 12.0], 3_150_000),
                _run("oip-binary", [16.0, 18.0], [11.0, 11.0], 602_400),
                ProtocolRun("tfserving", error="request 1: HTTP 400: b'bad'"),
            ],
        ),
        # A failed cold start counts nowhere in the protocol figures.
        _cold(2, [_run("oip-binary", [900.0], [1.0], 1)], error="InitError: boom"),
    ]
    base = StrategyRun("baseline", "b")
    base.cold_starts = [_cold(0, [])]
    return BenchResult(
        created="t",
        model={"name": "m"},
        network=NetworkInfo("loopback", False),
        settings={"cold_starts": 2},
        strategies=[base, tf],
    )


def test_protocol_summary_pools_warm_requests_and_predict_times() -> None:
    protocols = {p["protocol"]: p for p in summarize(_result().strategies[1])["protocols"]}
    assert list(protocols) == ["json", "oip-binary", "tfserving"]
    binary = protocols["oip-binary"]
    assert binary["requests"] == 4 and binary["errors"] == []
    assert binary["warm_p50_ms"] == 15.0
    assert binary["warm_p99_ms"] == 16.0 + 2.0 * 0.97
    assert binary["predict_p50_ms"] == 11.0 and binary["predict_samples"] == 4
    assert binary["overhead_p50_ms"] == 4.0
    assert binary["request_bytes"] == 602_400
    # The failed TF Serving run is an error, not a figure.
    tfs = protocols["tfserving"]
    assert tfs["requests"] == 2 and tfs["errors"] == ["request 1: HTTP 400: b'bad'"]
    assert tfs["warm_p50_ms"] == 42.0 and tfs["predict_p50_ms"] == 11.0
    assert protocols["json"]["overhead_p50_ms"] == 33.0 - 11.5


def test_protocol_table_has_a_row_per_strategy_and_protocol() -> None:
    doc = orjson.loads(orjson.dumps(result_dict(_result())))
    lines = table(doc).splitlines()
    header = next(line for line in lines if line.startswith("strategy") and "protocol" in line)
    for column in ("request bytes", "warm p50 / p99", "predict p50", "overhead p50"):
        assert column in header
    row = next(line for line in lines if line.split()[:2] == ["preheat-tf", "oip-binary"])
    assert "0.60 MB" in row and "15 ms / 18 ms" in row and "11 ms" in row and "4.0 ms" in row
    assert any(line.split()[:2] == ["preheat-tf", "json"] and "3.15 MB" in line for line in lines)
    assert any("preheat-tf tfserving: request 1: HTTP 400" in line for line in lines)
    assert any("baseline: JSON only" in line for line in lines)


def test_oip_binary_request_is_raw_bytes_after_its_json_header() -> None:
    req = oip_binary("m", {"x": X})
    assert req.path == "/v2/models/m/infer"
    split = int(req.headers["Inference-Header-Content-Length"])
    header = orjson.loads(req.body[:split])
    assert header["inputs"] == [
        {"name": "x", "shape": [1, 2, 3], "datatype": "FP32",
         "parameters": {"binary_data_size": 24}},
    ]  # fmt: skip
    assert header["parameters"] == {"binary_data_output": True}
    assert np.frombuffer(req.body[split:], "<f4").tolist() == X.ravel().tolist()


def test_a_224x224x3_float32_image_is_about_its_raw_size_in_oip_binary() -> None:
    image = np.zeros((1, 224, 224, 3), dtype="float32")
    assert len(oip_binary("resnet50", {"input_1": image}).body) < 1.1e6
    batch = np.zeros((6, 224, 224, 3), dtype="float32")
    assert len(oip_binary("resnet50", {"input_1": batch}).body) < 6 * 1024 * 1024


def test_binary_answers_are_read_back_exactly() -> None:
    y = np.array([[0.1, -2.5, 3e-8]], dtype="float32")
    out = {"name": "y", "datatype": oip.datatype("float32"), "shape": [1, 3],
           "parameters": {"binary_data_size": 12}}  # fmt: skip
    header = orjson.dumps({"outputs": [out]})
    got = read_oip_binary(header + tensors.encode(y), str(len(header)), {"y": y})
    assert got["y"].tobytes() == y.tobytes()


def test_tf_serving_rows_one_or_many_inputs_and_strings() -> None:
    one = orjson.loads(tf_serving("m", {"x": X}).body)
    assert one == {"instances": X.tolist()}
    words = np.array([b"ab", b"c"], dtype=object)
    many = orjson.loads(tf_serving("m", {"x": X[0], "w": words}).body)
    assert many["instances"][1]["w"] == {"b64": base64.b64encode(b"c").decode()}
    assert many["instances"][0]["x"] == X[0][0].tolist()
    like = {"a": np.zeros((2,), "float32"), "b": np.zeros((2,), "int64")}
    got = read_tf_serving(
        orjson.dumps({"predictions": [{"a": 1.5, "b": 2}, {"a": 0.5, "b": 3}]}), like
    )
    assert got["a"].dtype == np.float32 and got["b"].tolist() == [2, 3]


def test_answers_that_disagree_with_json_are_named() -> None:
    y = {"y": np.array([1.0, 2.0], "float32")}
    assert agrees(y, {"y": y["y"].copy()}) is None
    assert "differs" in (agrees({"y": np.array([1.0, 2.5], "float32")}, y) or "")
    assert "shape" in (agrees({"y": np.array([[1.0, 2.0]], "float32")}, y) or "")
    assert "outputs" in (agrees({"z": y["y"]}, y) or "")


def test_predict_lines_are_read_from_the_log() -> None:
    tail = "\n".join(
        [
            "START RequestId: r1 Version: $LATEST",
            '{"level":"INFO","message":"predicted","function_request_id":"r1",'
            '"predict_ms":12.5,"protocol":"native"}',
            '{"level":"INFO","message":"preheat init","init":{}}',
            '{"message":"predicted","function_request_id":"r2","predict_ms":9,"protocol":"oip"}',
            '{"message":"predicted","predict_ms":true,"protocol":"oip"}',
            "{not json predict_ms",
        ]
    )
    found = predictions(tail)
    assert [(p.request_id, p.protocol, p.predict_ms) for p in found] == [
        ("r1", "native", 12.5),
        ("r2", "oip", 9.0),
    ]
