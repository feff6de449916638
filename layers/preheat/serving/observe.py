"""What the inference function tells CloudWatch: structured logs, EMF metrics, X-Ray traces.

One `Observability` per environment, built at INIT. The init breakdown goes out once, as a
log line and as EMF metrics in milliseconds; each request adds a count and its latency.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from preheat import constants as c

DEFAULT_SERVICE = "preheat-inference"
# Init phases published as metrics, by their key in the init report.
PHASE_METRICS: dict[str, str] = {
    "preheat_import_s": "InitPreheatImportMs",
    "runtime_import_s": "InitRuntimeImportMs",
    "fetch_s": "InitFetchMs",
    "fetch_wait_s": "InitFetchWaitMs",
    "load_s": "InitLoadMs",
    "warmup_s": "InitWarmupMs",
    "init_s": "InitTotalMs",
    # The load's whole time in its own thread: within INIT, or partly after it when INIT
    # was handed back at its budget (handler/budget.py).
    "background_load_s": "InitBackgroundLoadMs",
}
# Published at INIT only: a load handed back reports its own phases later, these not again.
_INIT_ONLY = frozenset({"preheat_import_s", "init_s"})


def xray_enabled(env: Mapping[str, str] | None = None) -> bool:
    """True on Lambda with active tracing: Lambda then names the X-Ray daemon's address."""
    env = os.environ if env is None else env
    return bool(env.get("LAMBDA_TASK_ROOT") and env.get("AWS_XRAY_DAEMON_ADDRESS"))


F = TypeVar("F", bound=Callable[..., Any])


def _unchanged(fn: F) -> F:
    return fn


class NoTracer:
    """What the handler uses of powertools' Tracer, doing nothing: tracing is off.

    powertools' Tracer imports the X-Ray SDK (and botocore with it) even when disabled:
    about 0.25 s of INIT on one vCPU for a function that traces nothing.
    """

    disabled = True

    def capture_method(self, method: F) -> F:
        return method

    # Typed as powertools' own, so that a handler decorated by either checks alike.
    def capture_lambda_handler(self, **_options: Any) -> Callable[..., Any]:
        return _unchanged

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        pass


@dataclass
class Observability:
    logger: Logger
    metrics: Metrics
    tracer: Tracer | NoTracer

    def init_done(self, report: Mapping[str, Any]) -> None:
        """Log the init breakdown once and publish its phases as EMF metrics (ms)."""
        self.logger.info("preheat init", extra={"init": dict(report)})
        self._publish(report, PHASE_METRICS.keys())
        if "handed_back" in report:
            # 1 when INIT returned at its budget with the model still loading: the first
            # invoke then waits for it (InitBackgroundLoadMs follows once it is done).
            self.metrics.add_metric(
                "InitHandedBack", MetricUnit.Count, 1 if report["handed_back"] else 0
            )
        self.metrics.flush_metrics()

    def load_done(self, report: Mapping[str, Any]) -> None:
        """The init report again, completed by a load that INIT handed back, and its phases.

        Logged with the same `init` key, so that a reader taking the last init report of a
        log gets the whole of it.
        """
        self.logger.info("preheat load done", extra={"init": dict(report)})
        self._publish(report, [k for k in PHASE_METRICS if k not in _INIT_ONLY])
        self.metrics.flush_metrics()

    def _publish(self, report: Mapping[str, Any], keys: Iterable[str]) -> None:
        for key in keys:
            value = report.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.metrics.add_metric(
                    PHASE_METRICS[key], MetricUnit.Milliseconds, round(value * 1000, 3)
                )
        if report.get("stale"):
            # S3 failed and PREHEAT_ALLOW_STALE served an older version: worth an alarm.
            self.metrics.add_metric("InitStaleVersion", MetricUnit.Count, 1)
        for tier, count in (report.get("bytes_by_tier") or {}).items():
            if isinstance(count, int) and count:
                self.metrics.add_metric(f"InitBytes_{tier}", MetricUnit.Bytes, count)

    def init_failed(self, exc: BaseException) -> None:
        """One structured line naming the failure; INIT then fails with the same message."""
        self.logger.error(
            "preheat init failed",
            extra={"error": {"type": type(exc).__name__, "message": str(exc)}},
        )


def _xray_sdk_present() -> bool:
    return importlib.util.find_spec("aws_xray_sdk") is not None


def build(
    service: str | None = None,
    env: Mapping[str, str] | None = None,
    xray_sdk_present: Callable[[], bool] = _xray_sdk_present,
) -> Observability:
    """Logger, Metrics and Tracer for this environment; tracing only where X-Ray listens."""
    env = os.environ if env is None else env
    name = service or env.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
    namespace = env.get("POWERTOOLS_METRICS_NAMESPACE") or c.METRICS_NAMESPACE
    logger = Logger(service=name)
    tracing = xray_enabled(env)
    if tracing and not xray_sdk_present():
        # A function packaged without aws-xray-sdk must still start: tracing is a nicety,
        # a failed INIT is an outage. preheat's runtime layer ships the SDK.
        logger.warning("X-Ray is on but aws-xray-sdk is not installed: tracing disabled")
        tracing = False
    return Observability(
        logger=logger,
        metrics=Metrics(service=name, namespace=namespace),
        tracer=Tracer(service=name) if tracing else NoTracer(),
    )
