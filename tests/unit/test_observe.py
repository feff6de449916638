"""Observability set-up: tracing follows X-Ray, and a missing X-Ray SDK never fails INIT."""

from __future__ import annotations

from preheat.serving import observe

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


def test_without_tracing_the_xray_sdk_is_never_imported() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from preheat.serving import observe\n"
        "obs = observe.build('svc', {})\n"
        "@obs.tracer.capture_method\n"
        "def f(x):\n"
        "    return x + 1\n"
        "@obs.tracer.capture_lambda_handler(capture_response=False)\n"
        "def h(event, context):\n"
        "    return f(event)\n"
        "assert h(1, None) == 2\n"
        # powertools imports botocore's bare package for its user agent: cheap; its client
        # machinery is what the X-Ray SDK would pull in.
        "print(sorted(m for m in sys.modules if m.startswith(('aws_xray_sdk', 'botocore.'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
