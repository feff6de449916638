"""The CPU a fetch costs its process, apart from the main thread's own work beside it.

During INIT the fetch runs in background threads (Python's and the engine's native ones)
while the main thread imports the runtime. What the fetch costs is then the process's CPU
less the main thread's over the same window: threads that exited before the end are still
counted, as the process clock keeps them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def _main_thread_clock() -> Callable[[], float] | None:
    ident = threading.main_thread().ident
    try:
        clock_id = time.pthread_getcpuclockid(ident) if ident is not None else None
    except (AttributeError, OSError):  # not on every platform
        return None
    if clock_id is None:
        return None
    return lambda: time.clock_gettime(clock_id)


class CpuMeter:
    """Started where the fetch starts; `seconds()` is its CPU so far (None if unknown)."""

    def __init__(self) -> None:
        # Called from the main thread, the whole process's CPU is the fetch's: nothing else
        # of preheat's runs beside it then.
        on_main = threading.current_thread() is threading.main_thread()
        self._main = None if on_main else _main_thread_clock()
        self._known = on_main or self._main is not None
        self._process_start = time.process_time()
        self._main_start = self._main() if self._main is not None else 0.0

    def seconds(self) -> float | None:
        if not self._known:
            return None
        spent = time.process_time() - self._process_start
        if self._main is not None:
            try:
                spent -= self._main() - self._main_start
            except OSError:  # the main thread ended (interpreter shutting down)
                return None
        return max(0.0, spent)
