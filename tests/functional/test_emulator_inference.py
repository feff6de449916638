"""The real inference function cold-started on the local Lambda, its model fetched from S3."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push
from tests.fixtures.models import BuiltModel

pytestmark = pytest.mark.slow

FUNCTION_DIR = Path(__file__).resolve().parents[2] / "functions" / "inference"


def test_inference_cold_start_then_warm_on_the_emulator(
    dense_model: BuiltModel,
    s3_server: S3Server,
    start_emulator: Callable[..., Emulator],
    lambda_client_for: Callable[..., Any],
) -> None:
    bucket = f"emulator-inference-{os.getpid()}"
    s3_server.client().create_bucket(Bucket=bucket)
    uri = str(
        push(
            dense_model.path,
            f"s3://{bucket}/store",
            name="dense",
            version="1",
            s3_client=s3_server.client(),
        ).uri
    )
    fn = FunctionConfig(
        name="inference",
        code_dir=FUNCTION_DIR,
        handler="app.handler",
        env={**s3_server.env(), "PREHEAT_MODEL_URI": uri, "TF_CPP_MIN_LOG_LEVEL": "2"},
        memory_mb=1024,
        timeout_s=60,
        # Lambda's 10 s would hold on Lambda's CPUs; a shared 2-core test machine
        # importing TensorFlow may need longer, and a retry here would test nothing new.
        init_timeout_s=120,
    )
    emu = start_emulator(fn)
    client = lambda_client_for(emu)
    x = np.random.default_rng(5).standard_normal((2, 4)).astype("float32")

    cold = client.invoke(
        FunctionName="inference", Payload=json.dumps({"inputs": {"x": x.tolist()}})
    )
    cold_answer = json.loads(cold["Payload"].read())
    ping = client.invoke(FunctionName="inference", Payload=b'{"preheat": {"warm": {}}}')
    ping_answer = json.loads(ping["Payload"].read())

    assert "FunctionError" not in cold, cold_answer
    (out_spec,) = dense_model.signature.outputs
    want = dense_model.reference({"x": x})[out_spec.name]
    np.testing.assert_allclose(cold_answer["outputs"][out_spec.name], want, rtol=1e-6)
    stats = emu.stats("inference")
    (env,) = stats.environments
    first, second = stats.invocations
    assert first.cold and first.init_duration_ms is not None and first.init_duration_ms > 0
    assert not second.cold and second.init_duration_ms is None
    # The model is big in memory: TensorFlow alone makes the peak RSS far above a bare runtime.
    assert first.max_memory_used_mb > 100
    warm = ping_answer["preheat"]["warm"]
    assert warm["first_call"] is False
    assert warm["log_stream"] == env.log_stream
    assert env.state == "idle" and env.init_duration_ms == first.init_duration_ms
