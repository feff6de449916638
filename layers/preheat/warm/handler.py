"""`warm_handler`: answer warm pings before a Lambda handler's own code runs."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, overload

from preheat import constants as c
from preheat.serving import budget
from preheat.settings import Settings
from preheat.warm import ping
from preheat.warm.state import EnvironmentState
from preheat.warm.state import state as _default_state

R = TypeVar("R")
Handler = Callable[[Any, Any], R]


class Load(Protocol):
    """The model load as a ping sees it (preheat.serving.budget.InitLoad)."""

    @property
    def loading(self) -> bool: ...

    def check(self, context: object) -> None: ...


@overload
def warm_handler(fn: Handler[R], /) -> Handler[R | dict[str, Any]]: ...


@overload
def warm_handler(
    *,
    hold_cap_ms: float | None = None,
    state: EnvironmentState | None = None,
    sleep: Callable[[float], None] = ...,
    clock: Callable[[], float] = ...,
    load: Callable[[], Load | None] = ...,
) -> Callable[[Handler[R]], Handler[R | dict[str, Any]]]: ...


def warm_handler(
    fn: Handler[R] | None = None,
    /,
    *,
    hold_cap_ms: float | None = None,
    state: EnvironmentState | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    load: Callable[[], Load | None] = budget.current,
) -> Any:
    """Wrap `handler(event, context)` so a warm ping is answered without calling it.

    Every other event goes to the handler unchanged; every call, ping or not, is counted in
    the environment's state. The hold cap comes from PREHEAT_WARM_HOLD_CAP_MS unless given,
    read once when the handler is decorated (during INIT).

    A ping never waits for the model: while a load that INIT handed back at its budget is
    still running, the answer says `"loading": true` at once. A load that failed after INIT
    fails the ping as it fails a request (see budget.InitLoad.check): an environment
    without its model must not be kept warm.
    """
    st = state if state is not None else _default_state
    cap = hold_cap_ms if hold_cap_ms is not None else Settings.from_env().warm_hold_cap_ms

    def decorate(handler: Handler[R]) -> Handler[R | dict[str, Any]]:
        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> R | dict[str, Any]:
            if ping.is_warm_event(event):
                current = load()
                if current is not None:
                    current.check(context)
                reply = ping.answer(event, context, state=st, cap_ms=cap, sleep=sleep, clock=clock)
                reply[c.WARM_EVENT_KEY][ping.WARM]["loading"] = (
                    current is not None and current.loading
                )
                return reply
            st.count_call()
            return handler(event, context)

        return wrapper

    return decorate(fn) if fn is not None else decorate
