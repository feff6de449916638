"""The warmer engine's logic against a small in-memory Lambda that routes like the real one.

The fake routes each invocation to an idle environment or starts a new one, holds it busy
for the ping's hold, and can spread arrivals, throttle above a limit or lack the function.
Behaviour on real processes is covered by tests/functional/test_warmer.py.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from preheat.exceptions import ConfigurationError
from preheat.warm.engine import (
    NOT_FOUND,
    NOT_WARM_AWARE,
    THROTTLED,
    TIMEOUT,
    Target,
    warm_all,
    warm_target,
)


@dataclass
class Env:
    id: str
    busy: bool = True
    calls: int = 0


class FakeLambda:
    def __init__(
        self,
        *,
        limit: int | None = None,
        arrival_gap_s: float = 0.0,
        init_s: float = 0.0,
        functions: tuple[str, ...] = ("fn",),
        answer: str = "warm",
        hold_cap_ms: float | None = None,
    ) -> None:
        self.hold_cap_ms = hold_cap_ms
        self.limit = limit
        self.arrival_gap_s = arrival_gap_s
        self.init_s = init_s
        self.functions = functions
        self.answer = answer
        self.envs: list[Env] = []
        self.arrivals: dict[int, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.invocations = 0
        self.release = threading.Event()

    def reap(self, n: int) -> list[str]:
        with self.lock:
            gone, self.envs = self.envs[:n], self.envs[n:]
        return [e.id for e in gone]

    def invoke(self, **kw: Any) -> dict[str, Any]:
        name = kw["FunctionName"]
        if name not in self.functions:
            raise _error(404, "ResourceNotFoundException", f"Function not found: {name}")
        warm = orjson.loads(kw["Payload"])["preheat"]["warm"]
        with self.lock:
            k = self.arrivals[warm["round"]]
            self.arrivals[warm["round"]] += 1
        time.sleep(k * self.arrival_gap_s)
        with self.lock:
            self.invocations += 1
            env = next((e for e in self.envs if not e.busy), None)
            cold = env is None
            if env is None:
                if self.limit is not None and len(self.envs) >= self.limit:
                    raise _error(429, "TooManyRequestsException", "Rate Exceeded.")
                env = Env(uuid.uuid4().hex)
                self.envs.append(env)
            env.busy = True
        if cold:
            # A wait, not a sleep: a test ends its slow INITs instead of leaving threads behind.
            self.release.wait(self.init_s)
        held = (
            warm["hold_ms"] if self.hold_cap_ms is None else min(warm["hold_ms"], self.hold_cap_ms)
        )
        time.sleep(held / 1000)
        with self.lock:
            env.busy = False
            env.calls += 1
            first = env.calls == 1
        if self.answer == "error":
            body = {"errorMessage": "boom", "errorType": "RuntimeError"}
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _body(body)}
        if self.answer == "plain":
            return {"StatusCode": 200, "Payload": _body({"statusCode": 400})}
        reply = {"environment_id": env.id, "first_call": first, "cold": first}
        reply["held_ms"] = held
        if self.hold_cap_ms is not None:
            reply["hold_cap_ms"] = self.hold_cap_ms
        return {"StatusCode": 200, "Payload": _body({"preheat": {"warm": reply}})}


def _error(status: int, code: str, message: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}}
    response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, "Invoke")


def _body(obj: object) -> io.BytesIO:
    return io.BytesIO(orjson.dumps(obj))


def test_cold_cycle_warms_n_distinct_environments() -> None:
    fake = FakeLambda()
    report = warm_target(fake, "fn", "live", 4, hold_ms=100)
    assert report.ok and report.warm == 4
    assert len(set(report.environment_ids)) == 4 == len(fake.envs)
    assert report.cold_starts == 4
    assert report.rounds == 1 and report.reason is None


def test_warm_cycle_causes_no_cold_start_and_sees_the_same_environments() -> None:
    fake = FakeLambda()
    first = warm_target(fake, "fn", None, 4, hold_ms=100)
    second = warm_target(fake, "fn", None, 4, hold_ms=100, previous=first.environment_ids)
    assert second.ok and second.cold_starts == 0
    assert set(second.environment_ids) == set(first.environment_ids)
    assert second.new_environments == [] and second.lost_environments == []


def test_spread_wider_than_the_hold_converges_in_later_rounds() -> None:
    # Arrivals 30 ms apart: a 10 ms hold lets later pings reuse earlier environments.
    fake = FakeLambda(arrival_gap_s=0.03)
    report = warm_target(fake, "fn", None, 4, hold_ms=10, max_rounds=8)
    assert report.ok and report.warm == 4 == len(fake.envs)
    assert report.rounds > 1
    first, last = report.round_details[0], report.round_details[-1]
    assert first.distinct < 4
    assert last.distinct == 4 and last.sent == 4
    holds = [r.hold_ms for r in report.round_details]
    assert holds == sorted(holds) and holds[-1] > holds[0]


def test_round_budget_spent_reports_the_shortfall() -> None:
    fake = FakeLambda(arrival_gap_s=0.03)
    report = warm_target(fake, "fn", None, 4, hold_ms=10, max_rounds=1)
    assert not report.ok and report.shortfall == 4 - report.warm > 0
    assert report.rounds == 1
    assert report.reason is not None and "rounds" in report.reason


def test_hold_never_grows_past_max_hold() -> None:
    fake = FakeLambda(arrival_gap_s=0.03)
    report = warm_target(fake, "fn", None, 4, hold_ms=10, max_hold_ms=20, max_rounds=3)
    assert max(r.hold_ms for r in report.round_details) == 20


def test_hold_never_asks_past_the_functions_own_cap() -> None:
    fake = FakeLambda(arrival_gap_s=0.03, hold_cap_ms=40)
    report = warm_target(fake, "fn", None, 4, hold_ms=10, max_rounds=4)
    assert [r.hold_ms for r in report.round_details][1:] == [40, 40, 40]
    assert not report.ok
    assert report.reason is not None and "last hold 40 ms" in report.reason


def test_throttling_stops_with_the_shortfall_instead_of_looping() -> None:
    fake = FakeLambda(limit=2)
    report = warm_target(fake, "fn", None, 5, hold_ms=100, max_rounds=10)
    assert report.warm == 2 and report.shortfall == 3
    assert report.errors[THROTTLED] == 3
    assert report.rounds == 1
    assert report.reason is not None and "throttled" in report.reason
    assert fake.invocations == 5


def test_missing_function_is_reported_after_one_round() -> None:
    fake = FakeLambda()
    report = warm_target(fake, "nope", None, 3, max_rounds=5)
    assert report.warm == 0 and report.rounds == 1
    assert report.errors == {NOT_FOUND: 3}
    assert report.reason is not None and "not found" in report.reason


def test_handler_without_warm_pings_is_named() -> None:
    report = warm_target(FakeLambda(answer="plain"), "fn", None, 2)
    assert report.errors == {NOT_WARM_AWARE: 2} and report.rounds == 1
    assert report.reason is not None and "warm_handler" in report.reason


def test_function_errors_are_counted_and_stop() -> None:
    report = warm_target(FakeLambda(answer="error"), "fn", None, 2, max_rounds=4)
    assert report.errors == {"function_error": 2} and report.rounds == 1
    assert report.reason is not None and "boom" in report.reason


def test_time_budget_is_never_exceeded() -> None:
    fake = FakeLambda(init_s=5.0)
    start = time.monotonic()
    report = warm_target(fake, "fn", None, 2, budget_s=0.3)
    fake.release.set()
    assert time.monotonic() - start < 3.0
    assert report.errors.get(TIMEOUT) == 2 and report.warm == 0
    assert report.reason is not None and "budget" in report.reason


def test_reaped_environment_is_replaced_and_named() -> None:
    fake = FakeLambda()
    first = warm_target(fake, "fn", None, 3, hold_ms=100)
    (gone,) = fake.reap(1)
    second = warm_target(fake, "fn", None, 3, hold_ms=100, previous=first.environment_ids)
    assert second.ok and second.cold_starts == 1
    assert second.lost_environments == [gone]
    assert len(second.new_environments) == 1
    assert second.new_environments[0] not in first.environment_ids


def test_warm_all_keeps_going_past_a_failed_target() -> None:
    fake = FakeLambda(functions=("a", "c"))
    targets = [Target("a", None, 2), Target("b", "live", 2), Target("c", None, 1)]
    reports = warm_all(fake, targets, hold_ms=100)
    assert [r.label for r in reports] == ["a", "b:live", "c"]
    assert [r.ok for r in reports] == [True, False, True]
    assert reports[1].errors == {NOT_FOUND: 2}


def test_warm_all_shares_one_budget() -> None:
    fake = FakeLambda(init_s=5.0, functions=("a", "b"))
    start = time.monotonic()
    reports = warm_all(fake, [Target("a", None, 1), Target("b", None, 1)], budget_s=0.4)
    fake.release.set()
    assert time.monotonic() - start < 3.0
    assert not reports[1].ok and reports[1].reason is not None
    assert "budget" in reports[1].reason


@pytest.mark.parametrize("bad", [0, -1, 1001, True, 2.5])
def test_concurrency_is_validated(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="concurrency"):
        Target("fn", None, bad)


def test_report_serialises() -> None:
    report = warm_target(FakeLambda(), "fn", "live", 1, hold_ms=10)
    data = orjson.loads(orjson.dumps(report.to_dict()))
    assert data["asked"] == 1 and data["warm"] == 1 and data["shortfall"] == 0
    assert data["round_details"][0]["sent"] == 1
