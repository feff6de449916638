"""The INIT budget: a model load that cannot finish in time goes on after INIT returns.

Lambda stops an on-demand INIT at 10 s and runs all of it again inside the first invoke:
a slow load (a large model, a slow link, a cold disk tier) pays 10 s of INIT for nothing,
then its whole time again. With a budget, INIT starts the load in a thread of its own and
waits for it until the budget, counted from the start of the process; a load not done by
then is handed back: INIT returns, and the first invoke waits for that same thread within
its own remaining time. One thread owns the load from start to end; INIT and the invokes
only wait for it (`Thread.join` with a timeout), so nothing can load the model twice.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

from preheat import constants as c
from preheat.exceptions import ModelNotReady
from preheat.settings import Settings

T = TypeVar("T")

# Initialization types whose INIT must end with the model loaded. SnapStart snapshots the
# environment when INIT ends: a load still running would be missing from the snapshot, or
# caught half done. Provisioned concurrency runs INIT ahead of any request and then freezes
# the environment: a load handed back would not move until the first request came, which
# would then pay for it after all.
_MUST_FINISH = frozenset({"snap-start", "provisioned-concurrency"})
RUNTIME_API_VERSION = "2018-06-01"
# How long reporting a failed load to the Runtime API may take before the process exits
# anyway (Lambda then reports Runtime.ExitError, and the log still holds the message).
_POST_TIMEOUT_S = 2.0


def budget_for(settings: Settings, env: Mapping[str, str]) -> float | None:
    """The budget for this INIT in seconds; None: INIT waits for the load, however long."""
    if settings.init_budget_s <= 0:
        return None
    if env.get(c.ENV_LAMBDA_INIT_TYPE) in _MUST_FINISH:
        return None
    return float(settings.init_budget_s)


class BackgroundLoad(Generic[T]):
    """`load()` run once in a daemon thread; anyone may wait for it with a timeout.

    Daemon: an environment shut down while a load runs must still be able to exit.
    """

    def __init__(self, load: Callable[[], T], clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._clock = clock
        self._thread = threading.Thread(target=self._run, name="preheat-load", daemon=True)
        self._value: list[T] = []
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None

    def start(self) -> BackgroundLoad[T]:
        self.started_at = self._clock()
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._value.append(self._load())
        except BaseException as exc:  # handed to whoever waits, as INIT would have raised it
            self.error = exc
        finally:
            self.finished_at = self._clock()

    def wait(self, timeout_s: float | None) -> bool:
        """Wait up to `timeout_s` (None: until done); True when the load has ended."""
        self._thread.join(None if timeout_s is None else max(timeout_s, 0.0))
        return self.done

    @property
    def done(self) -> bool:
        return self.started_at is not None and not self._thread.is_alive()

    @property
    def seconds(self) -> float | None:
        """How long the load took, once it has ended."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def value(self) -> T:
        """The load's result; its exception if it failed. Only once done."""
        if not self.done:
            raise RuntimeError("the load has not ended")  # a caller's bug: wait() first
        if self.error is not None:
            raise self.error
        return self._value[0]


class Observer(Protocol):
    """Where the facts go: the inference function's structured log and EMF metrics."""

    def init_failed(self, exc: BaseException) -> None: ...

    def load_done(self, report: Mapping[str, Any]) -> None: ...


def remaining_ms(context: object) -> float | None:
    """What the Lambda context says is left of the invoke, or None outside Lambda."""
    get = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(get):
        return None
    try:
        return float(get())
    except (TypeError, ValueError):
        return None


def post_invocation_error(
    runtime_api: str, request_id: str, exc: BaseException, timeout_s: float = _POST_TIMEOUT_S
) -> bool:
    """Report `exc` as this invocation's error through the Lambda Runtime API.

    The body is the one awslambdaric sends for a handler's exception (and for an INIT error):
    errorMessage, errorType, requestId, stackTrace. True when the Runtime API accepted it.
    """
    body = json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": request_id,
            "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
        }
    ).encode()
    path = f"/{RUNTIME_API_VERSION}/runtime/invocation/{quote(request_id, safe='')}/error"
    conn = http.client.HTTPConnection(runtime_api, timeout=timeout_s)
    try:
        conn.request(
            "POST",
            path,
            body,
            {
                "Content-Type": "application/json",
                # What a handler's own exception is reported as: FunctionError "Unhandled".
                "Lambda-Runtime-Function-Error-Type": "Unhandled",
            },
        )
        resp = conn.getresponse()
        resp.read()
        return resp.status == 202
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class InitLoad(Generic[T]):
    """What INIT made of the load: finished (the common case), or handed back to the invokes.

    `report` is the init report's share of the load; for a load handed back it is completed
    in place, and published once, by the invoke that first finds the load done.
    """

    def __init__(
        self,
        load: BackgroundLoad[T],
        *,
        budget_s: float | None,
        handed_back_at: float | None,
        report_of: Callable[[T], Mapping[str, Any]],
        observer: Observer,
        what: str,
        env: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._report_of = report_of
        self._observer = observer
        self._what = what
        self._env = env
        self._clock = clock
        self._handed_back_at = handed_back_at
        self._lock = threading.Lock()
        self._late_published = False
        self.report: dict[str, Any] = {
            "init_budget_s": budget_s,
            "handed_back": handed_back_at is not None,
        }
        if handed_back_at is None:
            self.report.update(report_of(load.value()))
            self.report["background_load_s"] = _round(load.seconds)

    @property
    def handed_back(self) -> bool:
        return self._handed_back_at is not None

    @property
    def loading(self) -> bool:
        """True while a load handed back by INIT is still running."""
        return not self._load.done

    def get(self, context: object) -> T:
        """The loaded model; a load handed back is waited for within the invoke's time.

        A load still running when the time is up raises ModelNotReady (the environment
        stays, and the next invoke waits again); a load that failed fails the environment
        (see `check`).
        """
        if not self._load.done:
            start = self._clock()
            remaining = remaining_ms(context)
            timeout = None if remaining is None else (remaining - c.LOAD_WAIT_MARGIN_MS) / 1000
            if not self._load.wait(timeout):
                started = self._load.started_at or start
                now = self._clock()
                raise ModelNotReady(self._what, now - started, now - start)
        self.check(context)
        value = self._load.value()
        if self.handed_back:
            self._publish_late(value)
        return value

    def check(self, context: object) -> None:
        """Fail this invocation and end the environment if the load failed after INIT.

        INIT would have failed with the load's one-line message and left no environment
        behind; an invoke that finds the load failed does the same, in the two steps
        awslambdaric itself takes when INIT fails (`bootstrap.run`: post the error over the
        Runtime API, then `sys.exit(1)`): the invocation's error is the INIT message, then
        the runtime process exits. Lambda discards an environment whose runtime exits (what
        it otherwise reports as Runtime.ExitError) and cold-starts the next invoke in a
        fresh one, so nothing half-loaded is ever served or kept warm. SystemExit rather
        than os._exit: the interpreter shuts down in order (log lines and metrics flushed,
        atexit handlers run), and awslambdaric, which catches only Exception around the
        handler, lets it through untouched. Outside a Lambda runtime (no Runtime API; a
        plain process calling the handler) the load's own exception is raised instead.
        """
        exc = self._load.error if self._load.done else None
        if exc is None:
            return
        self._observer.init_failed(exc)
        api = self._env.get("AWS_LAMBDA_RUNTIME_API")
        request_id = getattr(context, "aws_request_id", None)
        if not api or not isinstance(request_id, str) or not request_id:
            raise exc
        post_invocation_error(api, request_id, exc)
        raise SystemExit(1)

    def _publish_late(self, value: T) -> None:
        with self._lock:
            if self._late_published:
                return
            self._late_published = True
        finished = self._load.finished_at
        assert finished is not None and self._handed_back_at is not None
        self.report.update(self._report_of(value))
        self.report["background_load_s"] = _round(self._load.seconds)
        # How long the load ran past the end of INIT (the part the first invoke waited for,
        # less any time the environment spent frozen between invokes).
        self.report["load_after_init_s"] = _round(max(finished - self._handed_back_at, 0.0))
        self._observer.load_done(self.report)


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 4)


_current: InitLoad[Any] | None = None


def current() -> InitLoad[Any] | None:
    """The load this process's INIT started (None before INIT ran one): for the warm ping."""
    return _current


def load_in_init(
    load: Callable[[], T],
    *,
    observer: Observer,
    report_of: Callable[[T], Mapping[str, Any]],
    init_started: float,
    what: str | None = None,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> InitLoad[T]:
    """Run `load` for INIT: to its end, or until the budget, then hand it to the invokes.

    `init_started` is when INIT began on `clock` (the runtime process's start): the budget
    is counted from there, as Lambda counts its limit. A load that fails within the budget
    raises here, and INIT fails with its message as it always did.
    """
    global _current
    settings = Settings.from_env() if settings is None else settings
    env = os.environ if env is None else env
    budget = budget_for(settings, env)
    background = BackgroundLoad(load, clock).start()
    timeout = None if budget is None else init_started + budget - clock()
    done = background.wait(timeout)
    if done and background.error is not None:
        raise background.error
    handle = InitLoad(
        background,
        budget_s=budget,
        handed_back_at=None if done else clock(),
        report_of=report_of,
        observer=observer,
        what=what or settings.model_uri or "the model",
        env=env,
        clock=clock,
    )
    _current = handle
    return handle
