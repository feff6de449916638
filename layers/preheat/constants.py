"""Every environment variable preheat reads, and the defaults behind them, in one place."""

from __future__ import annotations

from typing import Final

# Settings: argument > environment variable > default (see settings.py).
ENV_MODEL_URI: Final = "PREHEAT_MODEL_URI"
ENV_CACHE_DIR: Final = "PREHEAT_CACHE_DIR"
ENV_CACHE_MAX_BYTES: Final = "PREHEAT_CACHE_MAX_BYTES"
ENV_LOCAL_PATHS: Final = "PREHEAT_LOCAL_PATHS"
ENV_FETCH_CONCURRENCY: Final = "PREHEAT_FETCH_CONCURRENCY"
ENV_FETCH_RETRIES: Final = "PREHEAT_FETCH_RETRIES"
ENV_FETCH_TIMEOUT: Final = "PREHEAT_FETCH_TIMEOUT"
ENV_ALLOW_STALE: Final = "PREHEAT_ALLOW_STALE"
ENV_WARMUP: Final = "PREHEAT_WARMUP"
ENV_PREFETCH: Final = "PREHEAT_PREFETCH"
ENV_WARM_HOLD_CAP_MS: Final = "PREHEAT_WARM_HOLD_CAP_MS"
# How the TensorFlow runtime is imported: "lean" (only what serving a SavedModel needs) or
# "full" (`import tensorflow`); see runtimes/tf_import.py.
ENV_TF_IMPORT: Final = "PREHEAT_TF_IMPORT"
# Which client GETs chunks: "auto" (obstore when installed, else botocore), "obstore",
# or "botocore" (forces the pure-Python fallback).
ENV_FETCH_ENGINE: Final = "PREHEAT_FETCH_ENGINE"
# Seconds of INIT the model load may take before INIT returns and the load goes on in the
# background, for the first invoke to wait for (0: off); see handler/budget.py.
ENV_INIT_BUDGET_S: Final = "PREHEAT_INIT_BUDGET_S"
FETCH_ENGINES: Final = ("auto", "obstore", "botocore")
DEFAULT_FETCH_ENGINE: Final = "auto"

# Lambda's own variables that preheat reads.
ENV_LAMBDA_FUNCTION_NAME: Final = "AWS_LAMBDA_FUNCTION_NAME"
ENV_LAMBDA_LOG_STREAM: Final = "AWS_LAMBDA_LOG_STREAM_NAME"
# boto3's own variables, read the way boto3 reads them by the native fetch engine.
ENV_AWS_ENDPOINT_URL_S3: Final = "AWS_ENDPOINT_URL_S3"
ENV_AWS_ENDPOINT_URL: Final = "AWS_ENDPOINT_URL"
ENV_AWS_IGNORE_ENDPOINT_URLS: Final = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
ENV_AWS_DEFAULT_REGION: Final = "AWS_DEFAULT_REGION"
ENV_AWS_REGION: Final = "AWS_REGION"
ENV_AWS_ACCESS_KEY_ID: Final = "AWS_ACCESS_KEY_ID"
ENV_AWS_SECRET_ACCESS_KEY: Final = "AWS_SECRET_ACCESS_KEY"
ENV_AWS_SESSION_TOKEN: Final = "AWS_SESSION_TOKEN"
ENV_AWS_SECURITY_TOKEN: Final = "AWS_SECURITY_TOKEN"

DEFAULT_CACHE_DIR: Final = "/tmp/preheat"
# Where a model layer puts its artifacts (layers unpack under /opt) and where the
# container image recipe bakes them in.
DEFAULT_LOCAL_PATHS: Final = ("/opt/preheat/models", "/var/task/preheat/models")
DEFAULT_CACHE_FREE_FRACTION: Final = 0.8
DEFAULT_FETCH_CONCURRENCY: Final = 16
DEFAULT_FETCH_RETRIES: Final = 4
DEFAULT_FETCH_TIMEOUT_S: Final = 5.0
# A fetch that has completed no chunk for this long stops retrying and fails with a
# FetchError, so that a stalled S3 is reported before Lambda's 10 s INIT limit cuts it off.
FETCH_STALL_LIMIT_S: Final = 8.0
DEFAULT_WARM_HOLD_CAP_MS: Final = 2_000
DEFAULT_TF_IMPORT: Final = "lean"
# Under Lambda's 10 s on-demand INIT limit, with room for what INIT does after the load
# (the init report, the handler's decorators, the runtime client's first poll).
DEFAULT_INIT_BUDGET_S: Final = 9.0
# The longest budget accepted: 15 minutes, Lambda's longest function timeout.
MAX_INIT_BUDGET_S: Final = 900.0
# An invoke that waits for a load handed back by INIT stops waiting this long before the
# function's deadline, so that its answer (or its error) still gets out in time.
LOAD_WAIT_MARGIN_MS: Final = 500
TF_IMPORT_CHOICES: Final = ("lean", "full")

# Artifact format (see artifact/manifest.py).
ARTIFACT_FORMAT: Final = "preheat.artifact/1"
MANIFEST_NAME: Final = "manifest.json"
DEFAULT_CHUNK_SIZE: Final = 8 * 1024 * 1024
MIN_CHUNK_SIZE: Final = 1024 * 1024
MAX_CHUNK_SIZE: Final = 64 * 1024 * 1024
# A manifest listing more chunks than this is refused before anything is fetched:
# 100k chunks of 8 MiB is 800 GB, far past anything Lambda can hold.
MAX_CHUNKS: Final = 100_000
MAX_FILES: Final = 100_000

# Lambda's limits that preheat checks against.
LAMBDA_PAYLOAD_LIMIT_BYTES: Final = 6 * 1024 * 1024
LAMBDA_INIT_LIMIT_S: Final = 10.0
LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES: Final = 250 * 1024 * 1024
LAMBDA_ZIP_DIRECT_UPLOAD_LIMIT_BYTES: Final = 50 * 1024 * 1024
LAMBDA_MAX_LAYERS: Final = 5

# The key of a warm ping event: {"preheat": {"warm": {...}}}.
WARM_EVENT_KEY: Final = "preheat"
# A ping's hold ends this long before the function's own deadline, so the answer still
# gets out in time.
WARM_HOLD_MARGIN_MS: Final = 250
# Lambda's own variables the warm ping reads: provisioned environments are not cold.
ENV_LAMBDA_INIT_TYPE: Final = "AWS_LAMBDA_INITIALIZATION_TYPE"
ENV_LAMBDA_FUNCTION_VERSION: Final = "AWS_LAMBDA_FUNCTION_VERSION"
# The warmer function's defaults when its event names no targets: JSON
# ([{"function": "f", "qualifier": "live", "concurrency": 10}]) or "f:live=10,g=2".
ENV_WARM_TARGETS: Final = "PREHEAT_WARM_TARGETS"
ENV_WARM_MAX_ROUNDS: Final = "PREHEAT_WARM_MAX_ROUNDS"
ENV_WARM_HOLD_MS: Final = "PREHEAT_WARM_HOLD_MS"

# Tools, not the runtime: set to anything, the CLI shows the traceback of an unexpected error.
ENV_DEBUG: Final = "PREHEAT_DEBUG"
# The local Lambda: where an environment's layers are merged (Lambda's /opt), and the
# handler `preheat profile` imports under -X importtime.
ENV_OPT_DIR: Final = "PREHEAT_OPT_DIR"
ENV_PROFILE_HANDLER: Final = "PREHEAT_PROFILE_HANDLER"
METRICS_NAMESPACE: Final = "preheat"
