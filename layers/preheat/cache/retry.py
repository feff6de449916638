"""Retry one remote read with exponential backoff and full jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

BASE_DELAY_S = 0.05
MAX_DELAY_S = 2.0


class Retryable(Exception):
    """Raised by an attempt that may succeed if tried again; `cause` says why it failed."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(cause)


class GaveUp(Exception):
    """Every attempt failed with Retryable; carries the last cause and the attempt count."""

    def __init__(self, cause: str, attempts: int) -> None:
        self.cause = cause
        self.attempts = attempts
        super().__init__(f"{cause} (after {attempts} attempts)")


def backoff_delay(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Full jitter: a uniform delay in [0, min(cap, base * 2**attempt)]."""
    return rng() * min(MAX_DELAY_S, BASE_DELAY_S * (2.0**attempt))


def with_retries(
    attempt_fn: Callable[[], T],
    retries: int,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    give_up: Callable[[float], str | None] | None = None,
) -> T:
    """Call `attempt_fn` up to retries + 1 times while it raises Retryable; else GaveUp.

    `give_up(delay)`, asked before each retry, may return a reason to stop retrying now
    (e.g. the retry would end past a deadline); it is added to the last cause.
    """
    last = ""
    for attempt in range(retries + 1):
        try:
            return attempt_fn()
        except Retryable as exc:
            last = exc.cause
            if attempt == retries:
                break
            delay = backoff_delay(attempt, rng)
            reason = give_up(delay) if give_up is not None else None
            if reason:
                raise GaveUp(f"{last}; {reason}", attempt + 1) from None
            sleep(delay)
    raise GaveUp(last, retries + 1)
