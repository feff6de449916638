"""`load_model`: from a model URI to a warmed-up model, through the fastest tier that has it.

Memory first (a model this process already loaded), else the fetch `import preheat` started
(or a fresh `cache.resolve`), then the runtime's load and a warm-up inference. The runtime
(TensorFlow, lean by default, or LiteRT) is imported while the fetch runs, unless the
function did it already. What each phase cost is kept on the model as `init_report`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, cast

from preheat.exceptions import ConfigurationError
from preheat.settings import Settings

if TYPE_CHECKING:
    from preheat.artifact.manifest import Manifest
    from preheat.cache import Resolved
    from preheat.runtimes.base import Model
    from preheat.runtimes.imports import RuntimeImport

Resolver = Callable[[str, Settings], "Resolved"]
Taker = Callable[[str, Settings], "Future[Resolved] | None"]
Loader = Callable[..., "Model"]
Importer = Callable[["Manifest", Settings], "RuntimeImport"]


def _default_resolve(uri: str, settings: Settings) -> Resolved:
    from preheat import cache

    return cache.resolve(uri, settings)


def _default_take(uri: str, settings: Settings) -> Future[Resolved] | None:
    from preheat.cache import prefetch

    return prefetch.take(uri, settings)


def _default_runtime_load(directory: Any, manifest: Manifest, *, warmup: bool) -> Model:
    from preheat import runtimes

    return runtimes.load(directory, manifest, warmup=warmup)


def _default_import_ahead(settings: Settings) -> object:
    from preheat.runtimes import imports

    return imports.import_expected(settings)


def _default_import_runtime(manifest: Manifest, settings: Settings) -> RuntimeImport:
    from preheat import runtimes

    return runtimes.import_for(manifest, settings)


def _default_warm_up(model: Model) -> None:
    from preheat import runtimes

    runtimes.warm_up(model)


def _memory_key(uri: str) -> tuple[str, str]:
    return ("model", uri)


def _attach(model: Model, report: dict[str, Any]) -> None:
    # A runtime model with __slots__ simply carries no report.
    with contextlib.suppress(AttributeError):
        model.init_report = report  # type: ignore[attr-defined]


def init_report_of(model: object) -> dict[str, Any]:
    """The init breakdown `load_model` recorded on `model` (empty if none)."""
    report = getattr(model, "init_report", None)
    return dict(report) if isinstance(report, dict) else {}


def load(
    uri: str,
    settings: Settings,
    *,
    resolve: Resolver = _default_resolve,
    take: Taker = _default_take,
    runtime_load: Loader = _default_runtime_load,
    warm_up: Callable[[Model], None] = _default_warm_up,
    import_ahead: Callable[[Settings], object] = _default_import_ahead,
    import_runtime: Importer = _default_import_runtime,
    clock: Callable[[], float] = time.perf_counter,
) -> Model:
    """`load_model` with its collaborators passed in (the cache, the runtimes, the clock)."""
    from preheat.cache import memory

    start = clock()
    hit = memory.get(_memory_key(uri))
    if hit is not None:
        return cast("Model", hit)

    future = take(uri, settings) if settings.prefetch else None
    if future is not None:
        # The runtime is guessed from what is installed and imported now, in this thread,
        # while the prefetch threads fetch the manifest and the chunks: waiting for the
        # manifest to name the runtime would leave its GET outside the overlap. A wrong guess
        # is corrected below, at the price of the wasted import (runtimes/imports.py).
        # Usually the function did this already, right after `import preheat`.
        import_ahead(settings)
    waiting = clock()
    resolved = future.result() if future is not None else resolve(uri, settings)
    fetched = clock()

    # Another URI (an alias) may already have brought this very version into memory.
    hit = memory.get(_memory_key(resolved.version_uri))
    if hit is not None:
        memory.put(_memory_key(uri), hit)
        return cast("Model", hit)

    # A no-op when the runtime came in ahead; else its import is timed apart from the load.
    import_runtime(resolved.manifest, settings)
    imported = clock()
    model = runtime_load(resolved.directory, resolved.manifest, warmup=False)
    loaded = clock()
    if settings.warmup:
        warm_up(model)
    warmed = clock()

    manifest = resolved.manifest
    report: dict[str, Any] = {
        "uri": uri,
        "version_uri": resolved.version_uri,
        "name": manifest.name,
        "version": manifest.version,
        "runtime": manifest.runtime,
        "tier": resolved.tier,
        "stale": resolved.stale,
        "prefetched": future is not None,
        "bytes_by_tier": dict(resolved.bytes_by_tier),
        # The fetch's own duration; with prefetch most of it ran during the runtime import,
        # and only fetch_wait_s was spent waiting for it here.
        "fetch_s": round(resolved.seconds, 4),
        # What the fetch cost in CPU beside the main thread: on one vCPU, the import's loss.
        "fetch_cpu_s": None if resolved.cpu_seconds is None else round(resolved.cpu_seconds, 4),
        "fetch_wait_s": round(fetched - waiting, 4),
        # The runtime import's own duration, whenever it ran, and (TensorFlow) its path; a
        # lean import that fell back to full during the load says so here (see tf_import.py).
        **import_runtime(manifest, settings).report(),
        "load_s": round(loaded - imported, 4),
        "warmup_s": round(warmed - loaded, 4),
        "total_s": round(warmed - start, 4),
    }
    _attach(model, report)
    memory.put(_memory_key(resolved.version_uri), model)
    memory.put(_memory_key(uri), model)
    return model


def load_model(uri: str | None = None, **settings: Any) -> Model:
    """Load the model at `uri` (or PREHEAT_MODEL_URI) from the fastest tier that has it.

    Keyword arguments override Settings fields (argument > PREHEAT_* variable > default).
    """
    resolved_settings = Settings.from_env(**settings)
    target = uri or resolved_settings.model_uri
    if not target:
        raise ConfigurationError(
            "model URI", target, "set PREHEAT_MODEL_URI or pass uri= to load_model"
        )
    return load(target, resolved_settings.with_(model_uri=target))


def remember(uri: str, model: Model) -> None:
    """Make `model` what the memory tier answers for `uri` (an alias that moved to it)."""
    from preheat.cache import memory

    memory.put(_memory_key(uri), model)
