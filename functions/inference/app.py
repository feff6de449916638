"""The inference function: the model is fetched, loaded and warmed up during INIT.

`import preheat` comes first: with PREHEAT_MODEL_URI set it starts the fetch in background
threads, which then overlaps the import of the runtime just below. Any INIT failure (model
not found, integrity, no room) is logged as one structured line and fails INIT with its
message. A load still running at the INIT budget goes on after INIT, and the first invoke
waits for it (see preheat.serving.budget).
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

import os  # noqa: E402
from typing import Any  # noqa: E402

from preheat import constants  # noqa: E402
from preheat.loader import init_report_of  # noqa: E402
from preheat.serving import budget, observe, protocols, snapstart  # noqa: E402
from preheat.warm import state, warm_handler  # noqa: E402

obs = observe.build()
logger, metrics, tracer = obs.logger, obs.metrics, obs.tracer


def _labels(uri: str) -> tuple[str, ...]:
    """The alias the model was loaded by (NAME@ALIAS), which TF Serving's /labels/ may name."""
    _, sep, alias = uri.rstrip("/").rpartition("/")[2].partition("@")
    return (alias,) if sep and alias else ()


def _load() -> protocols.Served:
    model = preheat.load_model()
    state.mark_model_loaded()
    return protocols.Served(model, labels=_labels(os.environ.get(constants.ENV_MODEL_URI, "")))


try:
    # Loaded in a thread of its own: INIT waits for it up to PREHEAT_INIT_BUDGET_S, then
    # returns while it goes on, and the first invoke waits for it (preheat.serving.budget).
    LOAD = budget.load_in_init(
        _load,
        observer=obs,
        report_of=lambda served: init_report_of(served.model),
        init_started=state.init_started,
    )
except Exception as exc:  # logged once, structured; Lambda then reports the INIT error
    obs.init_failed(exc)
    raise

# The same dict as LOAD.report: a load handed back completes it when it is done.
INIT_REPORT: dict[str, Any] = LOAD.report
INIT_REPORT.update(preheat_import_s=round(_t1 - _t0, 4), init_s=round(time.perf_counter() - _t0, 4))
obs.init_done(INIT_REPORT)
state.mark_init_done()

# SnapStart: a restore whose alias moved swaps in the new version here; the handler reads
# SERVED at each call, so the swap is one assignment.
SERVED: protocols.Served | None = None


def _serve(model: Any) -> None:
    global SERVED
    SERVED = protocols.Served(model, labels=_labels(os.environ.get(constants.ENV_MODEL_URI, "")))


snapstart.register(lambda: (SERVED or LOAD.get(None)).model, _serve, obs)


# powertools wraps the warm ping too: when a ping is an environment's first call, that ping
# is its cold start, and the ColdStart metric and log field must say so there, not on the
# first real request after it. The ping is still answered before any model code runs.
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@warm_handler
def handler(event: Any, context: Any) -> Any:
    """Answer in the request's own form: preheat's, TF Serving's REST API, OIP, raw tensors.

    HTTP events (Function URL, API Gateway v1/v2) are routed by path, direct invocations
    by the shape of their body (see preheat.serving.protocols and docs/protocols.md).
    """
    metrics.add_metric("Requests", "Count", 1)
    outcome = protocols.serve(SERVED or LOAD.get(context), event)
    if outcome.predict_ms is not None:
        # One line per answered request: the model's own time, apart from decoding and
        # encoding, so a request's overhead per protocol can be told from the model's cost.
        logger.info(
            "predicted",
            extra={"predict_ms": round(outcome.predict_ms, 3), "protocol": outcome.protocol},
        )
    if outcome.status >= 500:
        metrics.add_metric("Errors", "Count", 1)
        logger.error(
            "prediction failed", exc_info=outcome.error, extra={"protocol": outcome.protocol}
        )
    elif outcome.status >= 400:
        metrics.add_metric("BadRequests", "Count", 1)
        # The reason can quote request values: log only where it failed, never the payload.
        field = getattr(outcome.error, "field", None)
        logger.info(
            "bad request",
            extra={"status": outcome.status, "field": field, "protocol": outcome.protocol},
        )
    return outcome.response
