"""Who this execution environment is: a stable id, its init timing and what it has served.

One `EnvironmentState` lives per process (`state`); a Lambda environment is one process.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from preheat import constants as c


def _process_age_s() -> float | None:
    """Seconds since this process started, read from /proc (None where there is none).

    INIT starts when the runtime process starts, well before any handler module is imported;
    measuring from there counts the interpreter and runtime-client start-up too.
    """
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        with open("/proc/uptime", "rb") as f:
            uptime_s = float(f.read().split()[0])
        # The command name (field 2) may hold spaces; fields after ')' are fixed.
        start_ticks = int(stat.rsplit(b")", 1)[1].split()[19])
        age = uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return age if age >= 0 else None


@dataclass(frozen=True)
class CallInfo:
    """What one invocation learned when it was counted."""

    invocations: int
    first_call: bool
    cold: bool


class EnvironmentState:
    """The environment's identity and counters, safe to share between threads."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        process_age: Callable[[], float | None] = _process_age_s,
    ) -> None:
        self._env = os.environ if env is None else env
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        age = process_age()
        self.init_started = now - age if age is not None else now
        self.init_done: float | None = None
        self.model_loaded = False
        self.invocations = 0
        self.environment_id = uuid.uuid4().hex

    @property
    def log_stream(self) -> str | None:
        return self._env.get(c.ENV_LAMBDA_LOG_STREAM) or None

    @property
    def provisioned(self) -> bool:
        """True when Lambda ran INIT ahead of any request (provisioned concurrency)."""
        return self._env.get(c.ENV_LAMBDA_INIT_TYPE) == "provisioned-concurrency"

    @property
    def init_ms(self) -> float | None:
        if self.init_done is None:
            return None
        return round((self.init_done - self.init_started) * 1000, 1)

    def mark_init_done(self) -> None:
        """Call at the end of the handler module; otherwise the first call marks it."""
        with self._lock:
            if self.init_done is None:
                self.init_done = self._clock()

    def mark_model_loaded(self, loaded: bool = True) -> None:
        self.model_loaded = loaded

    def renew(self) -> None:
        """A new identity after a SnapStart restore: restored copies must not share one id."""
        with self._lock:
            self.environment_id = uuid.uuid4().hex
            self.invocations = 0

    def count_call(self) -> CallInfo:
        """Count this invocation; the first one also closes INIT if nobody marked it."""
        with self._lock:
            if self.init_done is None:
                self.init_done = self._clock()
            self.invocations += 1
            first = self.invocations == 1
            # The first call of an on-demand environment is the one that waited for its INIT.
            return CallInfo(self.invocations, first, first and not self.provisioned)

    def describe(self) -> dict[str, Any]:
        return {
            "environment_id": self.environment_id,
            "log_stream": self.log_stream,
            "init_ms": self.init_ms,
            "invocations": self.invocations,
            "model_loaded": self.model_loaded,
        }


state = EnvironmentState()


def _register_snapstart_hook() -> None:
    """Renew the id after every restore, for any function using the warm state.

    Registered at import, so before the inference function's own hooks (handler/snapstart.py):
    after-restore hooks run in registration order, and its restore report logs the new id.
    """
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:
        return
    register_after_restore(state.renew)


_register_snapstart_hook()
