"""The handler side of warm pings: recognition, bounded holds, identity and counters."""

from __future__ import annotations

from typing import Any

import pytest

from preheat.warm import EnvironmentState, is_warm_event, warm_handler
from preheat.warm.ping import hold_limit_ms


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Context:
    function_name = "fn"
    function_version = "7"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn:live"

    def __init__(self, remaining_ms: int = 30_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def make(
    cap_ms: float = 2000, env: dict[str, str] | None = None
) -> tuple[Any, Clock, EnvironmentState, list[Any]]:
    clock = Clock()
    st = EnvironmentState(env=env or {}, clock=clock, process_age=lambda: 1.5)
    seen: list[Any] = []

    @warm_handler(hold_cap_ms=cap_ms, state=st, sleep=clock.sleep, clock=clock)
    def handler(event: Any, context: Any) -> Any:
        seen.append(event)
        return {"handled": event}

    return handler, clock, st, seen


def warm(hold_ms: Any = 0, rnd: Any = 1) -> dict[str, Any]:
    return {"preheat": {"warm": {"hold_ms": hold_ms, "round": rnd}}}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"preheat": {"warm": {}}}, True),
        ({"preheat": {"warm": {"hold_ms": 5}}}, True),
        ({"preheat": {"warm": None}}, True),
        ({"preheat": {}}, False),
        ({"preheat": "warm"}, False),
        ({"inputs": {"x": [1]}}, False),
        ([1, 2, 3], False),
        ("warm", False),
        (None, False),
    ],
)
def test_is_warm_event(event: Any, expected: bool) -> None:
    assert is_warm_event(event) is expected


def test_ping_is_answered_without_running_the_handler() -> None:
    handler, _, st, seen = make()
    reply = handler(warm(), Context())["preheat"]["warm"]
    assert seen == []
    assert reply["environment_id"] == st.environment_id
    assert reply["first_call"] is True and reply["cold"] is True
    assert reply["invocations"] == 1
    assert reply["round"] == 1
    assert reply["function"]["name"] == "fn" and reply["function"]["version"] == "7"
    assert "error" not in reply


def test_other_events_reach_the_handler_and_are_counted() -> None:
    handler, _, st, seen = make()
    assert handler({"inputs": [1]}, Context()) == {"handled": {"inputs": [1]}}
    assert seen == [{"inputs": [1]}]
    reply = handler(warm(), Context())["preheat"]["warm"]
    assert reply["first_call"] is False and reply["cold"] is False
    assert reply["invocations"] == 2
    assert st.invocations == 2


def test_identity_is_stable_across_calls() -> None:
    handler, _, _, _ = make()
    ids = {handler(warm(), Context())["preheat"]["warm"]["environment_id"] for _ in range(3)}
    assert len(ids) == 1


def test_two_environments_have_distinct_ids() -> None:
    a, b = EnvironmentState(env={}), EnvironmentState(env={})
    assert a.environment_id != b.environment_id


def test_hold_sleeps_for_the_requested_time() -> None:
    handler, clock, _, _ = make()
    reply = handler(warm(hold_ms=150), Context())["preheat"]["warm"]
    assert clock.slept == [pytest.approx(0.150)]
    assert reply["held_ms"] == pytest.approx(150.0)


def test_hold_is_bounded_by_the_cap() -> None:
    handler, clock, _, _ = make(cap_ms=300)
    reply = handler(warm(hold_ms=3_600_000), Context())["preheat"]["warm"]
    assert clock.slept == [pytest.approx(0.300)]
    assert reply["held_ms"] == pytest.approx(300.0)
    assert reply["hold_cap_ms"] == 300


def test_hold_ends_before_the_function_deadline() -> None:
    handler, clock, _, _ = make(cap_ms=10_000)
    reply = handler(warm(hold_ms=5_000), Context(remaining_ms=1_000))["preheat"]["warm"]
    assert 0 < reply["held_ms"] < 1_000
    assert clock.slept[0] < 1.0


def test_no_hold_when_the_deadline_is_near() -> None:
    handler, clock, _, _ = make()
    reply = handler(warm(hold_ms=500), Context(remaining_ms=50))["preheat"]["warm"]
    assert clock.slept == [] and reply["held_ms"] == 0


def test_hold_cap_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREHEAT_WARM_HOLD_CAP_MS", "40")
    clock = Clock()
    st = EnvironmentState(env={}, clock=clock)
    handler: Any = warm_handler(state=st, sleep=clock.sleep, clock=clock)(lambda e, c: {})
    reply = handler(warm(hold_ms=1000), Context())["preheat"]["warm"]
    assert reply["held_ms"] == pytest.approx(40.0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hold_ms": "100"}, "hold_ms"),
        ({"hold_ms": -1}, "hold_ms"),
        ({"hold_ms": True}, "hold_ms"),
        ({"hold_ms": float("nan")}, "hold_ms"),
        ({"hold_ms": float("inf")}, "hold_ms"),
        ({"round": "two"}, "round"),
        ({"round": -3}, "round"),
        ([1], "warm"),
    ],
)
def test_malformed_ping_gets_an_error_answer(body: Any, field: str) -> None:
    handler, clock, st, seen = make()
    reply = handler({"preheat": {"warm": body}}, Context())["preheat"]["warm"]
    assert reply["error"].startswith(f"{field}=")
    assert reply["environment_id"] == st.environment_id
    assert clock.slept == [] and seen == []


def test_init_time_is_measured_from_process_start_to_init_done() -> None:
    clock = Clock()
    st = EnvironmentState(env={}, clock=clock, process_age=lambda: 2.0)
    assert st.init_ms is None
    clock.now += 0.5
    st.mark_init_done()
    clock.now += 10
    st.count_call()
    assert st.init_ms == pytest.approx(2500.0)


def test_first_call_closes_init_when_not_marked() -> None:
    clock = Clock()
    st = EnvironmentState(env={}, clock=clock, process_age=lambda: None)
    clock.now += 0.25
    st.count_call()
    assert st.init_ms == pytest.approx(250.0)


def test_model_loaded_is_reported() -> None:
    handler, _, st, _ = make()
    assert handler(warm(), Context())["preheat"]["warm"]["model_loaded"] is False
    st.mark_model_loaded()
    assert handler(warm(), Context())["preheat"]["warm"]["model_loaded"] is True


def test_provisioned_environment_is_not_cold() -> None:
    handler, _, _, _ = make(env={"AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"})
    reply = handler(warm(), Context())["preheat"]["warm"]
    assert reply["first_call"] is True and reply["cold"] is False


def test_restore_gives_a_new_identity() -> None:
    st = EnvironmentState(env={})
    before = st.environment_id
    st.count_call()
    st.renew()
    assert st.environment_id != before
    assert st.count_call().first_call is True


def test_log_stream_is_reported() -> None:
    st = EnvironmentState(env={"AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[7]abc"})
    assert st.describe()["log_stream"] == "2026/01/01/[7]abc"


@pytest.mark.parametrize(
    ("requested", "cap", "remaining", "expected"),
    [
        (100, 2000, None, 100),
        (5000, 2000, None, 2000),
        (5000, 2000, 1000, 750),
        (100, 2000, 100, 0),
        (0, 2000, 30000, 0),
    ],
)
def test_hold_limit(requested: float, cap: float, remaining: float | None, expected: float) -> None:
    assert hold_limit_ms(requested, cap, remaining) == expected
