"""Import a runtime (TensorFlow or LiteRT) once per process, timed, as early in INIT as it can be.

The inference function calls `import_expected()` right after `import preheat`, while the
model fetch runs in background threads; `load_model` calls `ensure(manifest.runtime)`, which
costs nothing when the runtime is already in.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from preheat.settings import Settings

log = logging.getLogger("preheat")

# The module whose import makes each runtime ready, when its installation is probed.
RUNTIME_PACKAGES: dict[str, str] = {
    "tensorflow": "tensorflow",
    "litert": "ai_edge_litert",
}


@dataclass(frozen=True)
class RuntimeImport:
    """One runtime's import in this process: what it cost and, for TensorFlow, which path."""

    runtime: str
    seconds: float
    tf_import: str | None = None  # "lean" | "full" for TensorFlow
    reason: str = ""
    fallback_s: float = 0.0

    def report(self) -> dict[str, object]:
        """The init report's fields for this import."""
        out: dict[str, object] = {"runtime_import_s": self.seconds}
        if self.tf_import is not None:
            out["tf_import"] = self.tf_import
            if self.tf_import == "full":
                out["tf_import_reason"] = self.reason
        if self.fallback_s:
            out["tf_fallback_s"] = self.fallback_s
        return out


_lock = threading.Lock()
_done: dict[str, RuntimeImport] = {}


def _import_tensorflow(settings: Settings) -> RuntimeImport:
    from preheat.runtimes import tf_import

    state = tf_import.ensure(settings.tf_import)
    return RuntimeImport("tensorflow", state.seconds, state.path, state.reason, state.fallback_s)


def _import_litert(settings: Settings) -> RuntimeImport:
    del settings
    start = time.perf_counter()
    importlib.import_module("ai_edge_litert.interpreter")
    return RuntimeImport("litert", round(time.perf_counter() - start, 4))


IMPORTERS: dict[str, Callable[[Settings], RuntimeImport]] = {
    "tensorflow": _import_tensorflow,
    "litert": _import_litert,
}


def current(runtime: str) -> RuntimeImport | None:
    """The import of `runtime` this process made, refreshed for a TensorFlow fallback."""
    done = _done.get(runtime)
    if done is None or runtime != "tensorflow":
        return done
    from preheat.runtimes import tf_import

    # A load that fell back from lean to full changed the record after the import.
    state = tf_import.current()
    if state is None:
        return done
    return RuntimeImport("tensorflow", state.seconds, state.path, state.reason, state.fallback_s)


def ensure(runtime: str, settings: Settings | None = None) -> RuntimeImport:
    """Import `runtime` unless this process already did; raises ImportError if absent.

    Returns the record of the import, as it stands now.
    """
    with _lock:
        if runtime in _done:
            # Refreshed: a TensorFlow load may have completed a lean import since.
            return current(runtime) or _done[runtime]
        importer = IMPORTERS.get(runtime)
        if importer is None:
            raise KeyError(runtime)
        others = [r for r in _done.values() if r.runtime != runtime]
        done = importer(settings or Settings.from_env())
        _done[runtime] = done
    for other in others:
        log.warning(
            "imported %s for nothing (%.2f s of INIT): the model's manifest says %s; "
            "install only the runtime the model needs in this function",
            other.runtime,
            other.seconds,
            runtime,
        )
    return done


def expected_runtime(
    installed: Callable[[str], bool] | None = None,
) -> str | None:
    """The runtime this environment is set up for, guessed from what is installed.

    The container image carries TensorFlow for TensorFlow artifacts; the LiteRT runtime layer
    carries the LiteRT interpreter and no TensorFlow. So TensorFlow, when present, is the
    guess. Nothing is imported to find out.
    """
    probe = installed or _installed
    for runtime, package in RUNTIME_PACKAGES.items():
        if probe(package):
            return runtime
    return None


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without a spec
        return False


def import_expected(settings: Settings | None = None) -> RuntimeImport | None:
    """Import the runtime this environment is set up for, now (see `expected_runtime`).

    Never raises: a bad setting or a broken installation is reported by `load_model`, which
    meets the same problem and fails INIT with one structured line.
    """
    runtime = expected_runtime()
    if runtime is None:
        return None
    try:
        return ensure(runtime, settings or Settings.from_env())
    except Exception as exc:  # load_model meets it again and reports it
        log.info("runtime %s not imported ahead of the model: %s", runtime, exc)
        return None
