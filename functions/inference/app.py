"""The inference function: the model is fetched, loaded and warmed up during INIT.

`import preheat` comes first: with PREHEAT_MODEL_URI set it starts the fetch in background
threads, which then overlaps the import of the runtime just below. Any INIT failure (model
not found, integrity, no room) is logged as one structured line and fails INIT with its
message.
"""

from __future__ import annotations

import time

_t0 = time.perf_counter()
import preheat  # noqa: E402  (first: starts the prefetch)
from preheat.runtimes import imports as runtime_imports  # noqa: E402

_t1 = time.perf_counter()
# The runtime is imported here, in the main thread, while the prefetch threads fetch the
# manifest and the chunks. Which runtime is guessed from what this environment carries (the
# container image has TensorFlow, the LiteRT runtime layer has only the LiteRT interpreter)
# rather than read from the manifest, so that the manifest's own GET overlaps the import
# too. The loader imports what the manifest names (usually already done), times the import
# and reports it as runtime_import_s, with tf_import (lean or full) for TensorFlow.
runtime_imports.import_expected()

from typing import Any  # noqa: E402

from preheat.exceptions import BadRequest  # noqa: E402
from preheat.handler import events, observe, responses  # noqa: E402
from preheat.runtimes.validate import coerce_inputs  # noqa: E402
from preheat.warm import state, warm_handler  # noqa: E402

obs = observe.build()
logger, metrics, tracer = obs.logger, obs.metrics, obs.tracer

try:
    MODEL = preheat.load_model()
except Exception as exc:  # logged once, structured; Lambda then reports the INIT error
    obs.init_failed(exc)
    raise

INIT_REPORT: dict[str, Any] = {
    **getattr(MODEL, "init_report", {}),
    "preheat_import_s": round(_t1 - _t0, 4),
    "init_s": round(time.perf_counter() - _t0, 4),
}
obs.init_done(INIT_REPORT)
state.mark_model_loaded()
state.mark_init_done()


def _model_info() -> dict[str, Any]:
    m = MODEL.manifest
    sig = MODEL.signature
    return {
        "model": {"name": m.name, "version": m.version, "runtime": m.runtime},
        "inputs": [{"name": t.name, "dtype": t.dtype, "shape": t.shape} for t in sig.inputs],
        "outputs": [{"name": t.name, "dtype": t.dtype, "shape": t.shape} for t in sig.outputs],
    }


@tracer.capture_method
def _predict(inputs: Any) -> dict[str, Any]:
    return MODEL.predict(coerce_inputs(MODEL.signature, inputs))


# powertools wraps the warm ping too: when a ping is an environment's first call, that ping
# is its cold start, and the ColdStart metric and log field must say so there, not on the
# first real request after it. The ping is still answered before any model code runs.
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@warm_handler
def handler(event: Any, context: Any) -> dict[str, Any]:
    """Answer a prediction (direct, API Gateway v1/v2 or Function URL) or a GET describing it."""
    metrics.add_metric("Requests", "Count", 1)
    as_http = events.is_http(event)
    try:
        request = events.parse(event)
        if request.method == "GET":
            return responses.describe(_model_info())
        outputs = _predict(request.inputs)
    except BadRequest as exc:
        metrics.add_metric("BadRequests", "Count", 1)
        # The reason can quote request values: log only where it failed, never the payload.
        logger.info("bad request", extra={"status": exc.status, "field": exc.field})
        return responses.error(exc, as_http=as_http)
    except Exception as exc:  # the environment must live on whatever one request does
        metrics.add_metric("Errors", "Count", 1)
        logger.exception("prediction failed")
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return responses.failure(
            500,
            f"the model could not answer this request: {first}",
            "InferenceError",
            as_http=as_http,
        )
    return responses.ok(outputs, as_http=as_http)
