"""Observability set-up: tracing follows X-Ray, and a missing X-Ray SDK never fails INIT."""

from __future__ import annotations

from preheat.handler import observe

ON_LAMBDA_WITH_XRAY = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
}


def test_tracing_is_off_away_from_lambda() -> None:
    assert observe.xray_enabled({}) is False
    assert observe.xray_enabled({"AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000"}) is False
    assert observe.xray_enabled(ON_LAMBDA_WITH_XRAY) is True


def test_a_missing_xray_sdk_disables_tracing_instead_of_failing() -> None:
    obs = observe.build("svc", ON_LAMBDA_WITH_XRAY, xray_sdk_present=lambda: False)
    assert obs.tracer.disabled is True
    # The Tracer must not import the SDK when disabled: this call would raise otherwise.
    obs.tracer.put_annotation("k", "v")
