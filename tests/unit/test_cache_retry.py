"""Per-chunk retries: exponential backoff with full jitter, a bounded number of attempts."""

from __future__ import annotations

import pytest

from preheat.cache.retry import MAX_DELAY_S, GaveUp, Retryable, backoff_delay, with_retries


def test_backoff_grows_exponentially_and_is_capped() -> None:
    delays = [backoff_delay(n, rng=lambda: 1.0) for n in range(12)]
    assert delays[1] == 2 * delays[0]
    assert delays[3] == 8 * delays[0]
    assert max(delays) == MAX_DELAY_S
    assert delays == sorted(delays)


def test_jitter_spans_zero_to_the_ceiling() -> None:
    assert backoff_delay(3, rng=lambda: 0.0) == 0.0
    assert 0 < backoff_delay(3, rng=lambda: 0.5) < backoff_delay(3, rng=lambda: 1.0)


def test_a_flaky_call_succeeds_after_retries_with_sleeps_between() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Retryable("503")
        return "ok"

    assert with_retries(flaky, 4, sleep=slept.append, rng=lambda: 1.0) == "ok"
    assert len(calls) == 3
    assert len(slept) == 2 and slept[1] == 2 * slept[0]


def test_gives_up_after_retries_plus_one_attempts_with_the_last_cause() -> None:
    calls: list[int] = []

    def always() -> None:
        calls.append(1)
        raise Retryable(f"failure {len(calls)}")

    with pytest.raises(GaveUp) as info:
        with_retries(always, 2, sleep=lambda _: None)
    assert info.value.attempts == 3 and len(calls) == 3
    assert info.value.cause == "failure 3"


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise PermissionError("denied")

    with pytest.raises(PermissionError):
        with_retries(broken, 5, sleep=lambda _: None)
    assert len(calls) == 1


def test_give_up_stops_retrying_with_its_reason_added_to_the_cause() -> None:
    calls: list[int] = []
    asked: list[float] = []

    def always() -> None:
        calls.append(1)
        raise Retryable("read timeout")

    def give_up(delay: float) -> str | None:
        asked.append(delay)
        return "stalled" if len(calls) >= 2 else None

    with pytest.raises(GaveUp) as info:
        with_retries(always, 10, sleep=lambda _: None, rng=lambda: 1.0, give_up=give_up)
    assert len(calls) == 2 and info.value.attempts == 2
    assert info.value.cause == "read timeout; stalled"
    assert asked[0] == backoff_delay(0, rng=lambda: 1.0)
