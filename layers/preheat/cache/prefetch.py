"""Start the model fetch at `import preheat`, in a background thread.

The fetch then overlaps the handler's own heavy imports (TensorFlow); `load_model` joins
it through `take`. Nothing heavy is imported here: with PREHEAT_MODEL_URI unset, this
costs one environment lookup.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from preheat import constants as c

if TYPE_CHECKING:
    from concurrent.futures import Future

    from preheat.cache.resolver import Resolved
    from preheat.settings import Settings

_lock = threading.Lock()
_pending: tuple[str, Settings, Future[Resolved]] | None = None

# The settings that change what resolve returns; the others concern loading only.
_FETCH_FIELDS = (
    "cache_dir",
    "cache_max_bytes",
    "local_paths",
    "fetch_concurrency",
    "fetch_retries",
    "fetch_timeout_s",
    "allow_stale",
    "fetch_engine",
)


def _same_fetch(a: Settings, b: Settings) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in _FETCH_FIELDS)


def _run(uri: str, settings: Settings, future: Future[Resolved]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        from preheat.cache.resolver import resolve

        result = resolve(uri, settings)
    except BaseException as exc:  # handed to whoever takes the future, never printed here
        future.set_exception(exc)
    else:
        future.set_result(result)


def start(uri: str, settings: Settings) -> Future[Resolved]:
    """Begin resolving `uri` in a daemon thread; `take` hands the future over once."""
    global _pending
    from concurrent.futures import Future

    future: Future[Resolved] = Future()
    with _lock:
        _pending = (uri, settings, future)
    threading.Thread(
        target=_run, args=(uri, settings, future), name="preheat-prefetch", daemon=True
    ).start()
    return future


def start_from_env() -> Future[Resolved] | None:
    """If PREHEAT_MODEL_URI is set and prefetch is on, begin resolving it now."""
    if not os.environ.get(c.ENV_MODEL_URI, "").strip():
        return None
    from preheat.exceptions import PreheatError
    from preheat.settings import Settings

    try:
        settings = Settings.from_env()
    except PreheatError:
        return None  # load_model reads the same settings and reports the error itself
    if not settings.prefetch or settings.model_uri is None:
        return None
    return start(settings.model_uri, settings)


def take(uri: str, settings: Settings) -> Future[Resolved] | None:
    """The in-flight fetch of `uri` if one was started with matching settings (once)."""
    global _pending
    with _lock:
        if _pending is None:
            return None
        p_uri, p_settings, future = _pending
        if p_uri != uri or not _same_fetch(p_settings, settings):
            return None
        _pending = None
        return future
