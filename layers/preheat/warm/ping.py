"""The warm ping protocol: recognise a ping, hold the environment busy, answer who it is.

Request: {"preheat": {"warm": {"hold_ms": H, "round": R}}} (both optional).
Answer: {"preheat": {"warm": {"environment_id", "init_ms", "first_call", "cold", ...}}}, or
the same with an "error" key when the ping itself is malformed; never an exception.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from preheat import constants as c
from preheat.serving.budget import remaining_ms
from preheat.warm.state import EnvironmentState

WARM = "warm"


def is_warm_event(event: object) -> bool:
    """True for {"preheat": {"warm": ...}}; anything else is a request for the handler."""
    if not isinstance(event, Mapping):
        return False
    body = event.get(c.WARM_EVENT_KEY)
    return isinstance(body, Mapping) and WARM in body


@dataclass(frozen=True)
class PingRequest:
    hold_ms: float = 0.0
    round: int | None = None


class MalformedPing(ValueError):
    """The ping's body cannot be honoured; the message says which field and why."""


def parse_ping(event: Mapping[str, Any]) -> PingRequest:
    body = event[c.WARM_EVENT_KEY][WARM]
    if body is None or body is True:
        return PingRequest()
    if not isinstance(body, Mapping):
        raise MalformedPing(f"warm={body!r} is not valid: use an object such as {{'hold_ms': 100}}")
    hold = body.get("hold_ms", 0)
    # bool is an int in Python, but `true` milliseconds is a caller's bug, not a duration.
    if isinstance(hold, bool) or not isinstance(hold, int | float) or not math.isfinite(hold):
        raise MalformedPing(f"hold_ms={hold!r} is not valid: use a number of milliseconds >= 0")
    if hold < 0:
        raise MalformedPing(f"hold_ms={hold!r} is not valid: use a number of milliseconds >= 0")
    rnd = body.get("round")
    if rnd is not None and (isinstance(rnd, bool) or not isinstance(rnd, int) or rnd < 0):
        raise MalformedPing(f"round={rnd!r} is not valid: use a whole number >= 0")
    return PingRequest(hold_ms=float(hold), round=rnd)


def hold_limit_ms(requested_ms: float, cap_ms: float, remaining_ms: float | None) -> float:
    """How long a ping may hold: the request, bounded by the cap and the function's deadline."""
    limit = min(requested_ms, cap_ms)
    if remaining_ms is not None:
        limit = min(limit, remaining_ms - c.WARM_HOLD_MARGIN_MS)
    return max(0.0, limit)


def _function(context: object) -> dict[str, str | None]:
    env = os.environ
    return {
        "name": getattr(context, "function_name", None) or env.get(c.ENV_LAMBDA_FUNCTION_NAME),
        "version": getattr(context, "function_version", None)
        or env.get(c.ENV_LAMBDA_FUNCTION_VERSION),
        "arn": getattr(context, "invoked_function_arn", None),
    }


def answer(
    event: Mapping[str, Any],
    context: object,
    *,
    state: EnvironmentState,
    cap_ms: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Count the call, hold as asked (within bounds) and describe this environment."""
    call = state.count_call()
    reply: dict[str, Any] = {
        **state.describe(),
        "first_call": call.first_call,
        "cold": call.cold,
        "function": _function(context),
    }
    try:
        ping = parse_ping(event)
    except MalformedPing as exc:
        reply.update(error=str(exc), held_ms=0.0, round=None)
        return {c.WARM_EVENT_KEY: {WARM: reply}}
    limit = hold_limit_ms(ping.hold_ms, cap_ms, remaining_ms(context))
    start = clock()
    if limit > 0:
        sleep(limit / 1000)
    reply.update(
        held_ms=round((clock() - start) * 1000, 1),
        hold_requested_ms=ping.hold_ms,
        hold_cap_ms=cap_ms,
        round=ping.round,
    )
    return {c.WARM_EVENT_KEY: {WARM: reply}}
