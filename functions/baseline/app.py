"""The baseline: a TensorFlow function on Lambda as most people write it today, without preheat.

During INIT it downloads the SavedModel from S3 with boto3's `download_file`, one file after
another, then imports TensorFlow and loads the model; the first request pays for the first
call. Every step runs in series. It reports the same INIT phases as the preheat inference
function (download, import, load) so that the benchmark can set them side by side.

Environment: BASELINE_BUCKET, BASELINE_PREFIX (the SavedModel's files under it), and boto3's
own AWS_ENDPOINT_URL_S3 for a non-AWS S3.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

import boto3

_init: dict[str, Any] = {}


def _seconds(start: float) -> float:
    return round(time.perf_counter() - start, 4)


_start = time.perf_counter()
BUCKET = os.environ["BASELINE_BUCKET"]
PREFIX = os.environ.get("BASELINE_PREFIX", "").strip("/")
# /tmp on Lambda; honours TMPDIR so that each local environment keeps its own.
MODEL_DIR = os.path.join(tempfile.gettempdir(), "model")

s3 = boto3.client("s3")
_bytes = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/"):
    for obj in page.get("Contents", []):
        target = os.path.join(MODEL_DIR, obj["Key"][len(PREFIX) + 1 :])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        s3.download_file(BUCKET, obj["Key"], target)
        _bytes += obj["Size"]
_init["download_s"] = _seconds(_start)
_init["bytes_by_tier"] = {"s3": _bytes}

_start = time.perf_counter()
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

_init["runtime_import_s"] = _seconds(_start)

_start = time.perf_counter()
_model = tf.saved_model.load(MODEL_DIR)
_serve = _model.signatures["serving_default"]
_init["load_s"] = _seconds(_start)
_input_dtypes = {name: spec.dtype for name, spec in _serve.structured_input_signature[1].items()}

# One line with the same shape as the inference function's init log, for the benchmark.
print(json.dumps({"message": "baseline init", "init": _init}), flush=True)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    inputs = {
        name: tf.constant(np.asarray(value), dtype=_input_dtypes[name])
        for name, value in event["inputs"].items()
    }
    return {"outputs": {name: t.numpy().tolist() for name, t in _serve(**inputs).items()}}
