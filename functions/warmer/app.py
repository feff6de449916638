"""The scheduled warmer: warm each target's N environments and report who answered.

Event: {"targets": [{"function": "name", "qualifier": "live", "concurrency": 10}],
"max_rounds": 5, "hold_ms": 250}; every key optional, with defaults from PREHEAT_WARM_TARGETS,
PREHEAT_WARM_MAX_ROUNDS and PREHEAT_WARM_HOLD_MS. One structured log line and one set of EMF
metrics (dimension: target) per target.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from preheat import constants as c
from preheat.exceptions import PreheatError
from preheat.warm import engine
from preheat.warm.targets import options_from, targets_from_event

# Stop this long before the function's own timeout so the report still gets out.
_SAFETY_S = 1.0
# Reads must outlast a target's INIT plus its hold; the time budget cuts them shorter.
_READ_TIMEOUT_S = 30.0

logger = Logger(service="preheat-warmer")
metrics = Metrics(namespace=c.METRICS_NAMESPACE, service="preheat-warmer")

# Created once per environment, at INIT; AWS_ENDPOINT_URL_LAMBDA is honoured by boto3.
client = engine.lambda_client(engine.MAX_CONCURRENCY, read_timeout_s=_READ_TIMEOUT_S)

# The environments each target answered with last time, so a report can name replacements.
_last_seen: dict[str, list[str]] = {}


def _budget_s(context: Any) -> float:
    get = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(get):
        return engine.DEFAULT_BUDGET_S
    return max(0.1, float(get()) / 1000 - _SAFETY_S)


def _publish(report: engine.TargetReport) -> None:
    metrics.add_dimension(name="target", value=report.label)
    metrics.add_metric(name="WarmEnvironments", unit=MetricUnit.Count, value=report.warm)
    metrics.add_metric(name="ColdStartsCaused", unit=MetricUnit.Count, value=report.cold_starts)
    metrics.add_metric(name="Shortfall", unit=MetricUnit.Count, value=report.shortfall)
    metrics.add_metric(name="Rounds", unit=MetricUnit.Count, value=report.rounds)
    # One EMF blob per target, so each carries its own dimension.
    metrics.flush_metrics()


def handler(event: Any, context: Any) -> dict[str, Any]:
    source = event if isinstance(event, Mapping) else {}
    try:
        targets = targets_from_event(event, os.environ.get(c.ENV_WARM_TARGETS))
        options = options_from(source, os.environ)
    except PreheatError as exc:
        logger.error("warmer event refused", extra={"error": str(exc)})
        return {"ok": False, "error": str(exc), "targets": []}
    if not targets:
        message = f"no targets: pass {{'targets': [...]}} in the event or set {c.ENV_WARM_TARGETS}"
        logger.error(message)
        return {"ok": False, "error": message, "targets": []}
    reports = engine.warm_all(
        client, targets, previous=_last_seen, budget_s=_budget_s(context), **options
    )
    for report in reports:
        _last_seen[report.label] = report.environment_ids
        data = report.to_dict()
        if report.ok:
            logger.info("target warm", extra={"warm": data})
        else:
            logger.warning(f"target short: {report.reason}", extra={"warm": data})
        _publish(report)
    return {"ok": all(r.ok for r in reports), "targets": [r.to_dict() for r in reports]}
