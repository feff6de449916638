"""SnapStart: what the inference function does before Lambda snapshots it and after a restore.

Lambda runs INIT once when a version is published, snapshots the environment and resumes
every new environment from that snapshot. So before the snapshot the model must be ready
and nothing may be frozen that copies must not share (open sockets); after each restore,
what copies would otherwise share is made new: S3 clients and credentials, random
generators, the environment id, and the model itself if its alias moved meanwhile.

The hooks are registered with `snapshot_restore_py` (Lambda's Python 3.12+ runtimes and
base images carry it; awslambdaric depends on it); without it, `register` does nothing.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preheat.exceptions import IntegrityError, LoadError, first_line

if TYPE_CHECKING:
    from preheat.artifact.manifest import Manifest
    from preheat.runtimes.base import Model
    from preheat.serving.observe import Observability
    from preheat.settings import Settings
    from preheat.uri import ModelURI
    from preheat.warm.state import EnvironmentState

log = logging.getLogger("preheat")

# Lambda gives the runtime's resume and every after-restore hook 10 s together, or the
# restore fails (SnapStartTimeoutException). The alias step waits at most this long for a
# new version; past it the restore ends serving the snapshot's version and the new one is
# swapped in from a background thread once it is loaded.
DEFAULT_ALIAS_WAIT_S = 6.0

# The restore breakdown's steps published as EMF metrics (ms), by their key in the report.
RESTORE_METRICS: dict[str, str] = {
    "reseed_s": "RestoreReseedMs",
    "clients_s": "RestoreClientsMs",
    "alias_s": "RestoreAliasMs",
    "total_s": "RestoreTotalMs",
}

ModelGetter = Callable[[], "Model"]
Swap = Callable[["Model"], None]
Clock = Callable[[], float]


def _entropy_seed() -> int:
    """128 bits from the OS: the kernel's generator is reseeded on restore, Python's are not."""
    return int.from_bytes(os.urandom(16), "big")


def reseed(seed: Callable[[], int] = _entropy_seed) -> list[str]:
    """Reseed Python's, numpy's and TensorFlow's global generators from fresh entropy.

    Only what is imported already: a library imported after the restore seeds itself from
    the OS then, and importing TensorFlow here would cost seconds of the restore's 10.
    Returns the generators reseeded, by library.
    """
    done = ["random"]
    random.seed(seed())
    np = sys.modules.get("numpy")
    if np is not None:
        # The legacy global RandomState (np.random.rand and friends) takes 32-bit words.
        words = [(seed() >> (32 * i)) & 0xFFFFFFFF for i in range(4)]
        np.random.seed(words)
        done.append("numpy")
    if "tensorflow" in sys.modules:
        _reseed_tensorflow(seed)
        done.append("tensorflow")
    return done


def _reseed_tensorflow(seed: Callable[[], int]) -> None:
    """The global seed (unseeded random ops) and the global tf.random.Generator.

    Through the internal modules the public names point at: reading `tf.random` from a lean
    import would complete it into a full one (runtimes/tf_import.py). Without a global seed,
    an unseeded op draws from a C++ generator seeded once per process, which the snapshot
    freezes, so a global seed is set even if the function never set one.

    The seed is set as `tf.random.set_seed` sets it, but without the kernel cache clear that
    comes with it: after that clear the model's next call instantiates and optimizes every
    function again (about half a second for ResNet50 on one vCPU, paid by the first request
    after each restore), and it buys no randomness. An eager op run under the new global
    seed gets new seed attributes, so a new kernel, anyway. A random op inside a traced
    function keeps its seeds; recreated, its kernel would seed itself from TensorFlow's
    process-wide generator, which the snapshot froze too (see `_random_ops`).
    """
    from tensorflow.python.eager import context
    from tensorflow.python.framework import random_seed
    from tensorflow.python.ops import stateful_random_ops

    # TensorFlow's seeds are 64-bit signed integers.
    value = seed() & 0x7FFF_FFFF_FFFF_FFFF
    ctx = context.context()
    if not hasattr(ctx, "_seed"):
        random_seed.set_seed(value)
    else:
        # Context._set_global_seed minus its TFE_ContextClearCaches (TensorFlow is pinned; a
        # release whose Context has no `_seed` takes the set_seed branch above). `_rng` is
        # made by the first set_seed, so it is not there to test for before one.
        ctx._seed = value
        ctx._rng = random.Random(value)
    generator = stateful_random_ops.Generator.from_seed(seed() & 0x7FFF_FFFF_FFFF_FFFF)
    stateful_random_ops.set_global_generator(generator)


def prepare_reseed() -> None:
    """Import now, before the snapshot, what `reseed` will need after each restore.

    TensorFlow's generator module is not part of a SavedModel's load path; importing it
    costs about 0.2 s on one vCPU, which would otherwise come out of every restore's 10 s.
    """
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import random_seed  # noqa: F401
        from tensorflow.python.ops import stateful_random_ops  # noqa: F401


def _random_ops(model: Model) -> frozenset[str] | None:
    """The loaded model's random op types (see TensorFlowModel.random_ops); an empty set for
    a model that runs outside TensorFlow, None for one preheat cannot look into.

    Such an op's kernel keeps its generator state, or seeds itself from TensorFlow's
    process-wide generator (seeded once per process): both are in the snapshot, so no
    after-restore step can make copies draw differently from it.
    """
    probe = getattr(model, "random_ops", None)
    if callable(probe):
        found = probe()
        return frozenset(found) if isinstance(found, frozenset | set) else None
    if model.manifest.runtime == "litert":
        return frozenset()
    return None


def verify_files(directory: Path, manifest: Manifest) -> int:
    """Hash every file of the artifact against its manifest; bytes checked.

    Before the snapshot: a damaged file would be served by every restored copy at once.
    """
    from preheat.artifact.manifest import hash_file

    checked = 0
    for entry in manifest.files:
        path = directory / entry.path
        try:
            actual = hash_file(path, manifest.chunk_size)[0]
        except FileNotFoundError:
            actual = "missing"
        if actual != entry.sha256:
            raise IntegrityError(
                f"{directory}/{entry.path}",
                entry.sha256,
                actual,
                "the model's files changed after it was loaded; the snapshot was not taken: "
                "publish the version again",
            )
        checked += entry.size
    return checked


def _no_prefetch(_uri: str, _settings: Settings) -> None:
    return None


@dataclass
class AliasOutcome:
    """What the restore learned about the model's alias."""

    alias: str | None = None
    version: str | None = None
    moved: bool = False
    loaded: bool = False
    error: str | None = None
    seconds: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "alias_version": self.version,
            "moved": self.moved,
            "loaded": self.loaded,
            "pending": self.moved and not self.done.is_set(),
            "error": self.error,
        }


class SnapStartHooks:
    """The two hooks and what they need: the function's model, how to swap it, its logs."""

    def __init__(
        self,
        model: ModelGetter,
        swap: Swap,
        obs: Observability,
        *,
        state: EnvironmentState | None = None,
        settings: Callable[[], Settings] | None = None,
        clock: Clock = time.perf_counter,
        alias_wait_s: float = DEFAULT_ALIAS_WAIT_S,
    ) -> None:
        from preheat.settings import Settings
        from preheat.warm.state import state as default_state

        self._model = model
        self._swap = swap
        self._obs = obs
        self._state = state if state is not None else default_state
        self._settings = settings or Settings.from_env
        self._clock = clock
        self._alias_wait_s = alias_wait_s
        self.restores = 0

    # ------------------------------------------------------------------ before the snapshot

    def before_snapshot(self) -> dict[str, Any]:
        """Model loaded, warmed and verified; S3 connections closed; INIT's output flushed."""
        from preheat import runtimes
        from preheat.cache import client

        clock = self._clock
        t0 = clock()
        model = self._model()  # waits for a load INIT handed to the background, if any
        t_model = clock()
        # A model loaded with warmup off would leave tracing to each restored copy's first
        # request; the second warm-up of a warm model costs one small inference.
        runtimes.warm_up(model)
        t_warm = clock()
        directory = self._directory(model)
        checked = verify_files(directory, model.manifest)
        t_verify = clock()
        closed = client.forget()
        t_close = clock()
        prepare_reseed()
        random_ops = _random_ops(model)
        if random_ops:
            # Not an error: dropout left in a serving graph, say, still answers; but every
            # copy restored from this snapshot draws the same numbers from these ops.
            log.warning(
                "preheat: the model's random ops (%s) draw the same numbers in every copy "
                "restored from one snapshot; make them stateless with a per-request seed "
                "if copies must differ",
                ", ".join(sorted(random_ops)),
            )
        t_prep = clock()
        report: dict[str, Any] = {
            "version": model.manifest.version,
            # None: a model preheat cannot look into.
            "random_ops": sorted(random_ops) if random_ops is not None else None,
            "directory": str(directory),
            "verified_bytes": checked,
            "engines_closed": closed,
            "model_wait_s": round(t_model - t0, 4),
            "warmup_s": round(t_warm - t_model, 4),
            "verify_s": round(t_verify - t_warm, 4),
            "close_s": round(t_close - t_verify, 4),
            "prepare_reseed_s": round(t_prep - t_close, 4),
            "total_s": round(t_prep - t0, 4),
        }
        self._obs.logger.info("preheat before snapshot", extra={"snapshot": report})
        # Metrics still buffered would be frozen into the snapshot and then published once
        # by every restored copy: INIT's report goes out now, and only here.
        if self._obs.metrics.metric_set:
            self._obs.metrics.flush_metrics()
        return report

    def _directory(self, model: Model) -> Path:
        """Where the loaded model's files are: the runtime's record, else its tier's."""
        directory = getattr(model, "directory", None)
        if isinstance(directory, Path):
            return directory
        from preheat import cache
        from preheat.loader import init_report_of

        # A version URI (never an alias): the tier that served it serves it again, from disk.
        uri = init_report_of(model).get("version_uri")
        settings = self._settings()
        target = uri if isinstance(uri, str) and uri else settings.model_uri
        if not target:
            raise LoadError(
                "SnapStart: the model's files cannot be found to verify before the snapshot "
                "(no model URI); load it with preheat.load_model or set PREHEAT_MODEL_URI"
            )
        return cache.resolve(target, settings).directory

    # ------------------------------------------------------------------ after a restore

    def after_restore(self) -> dict[str, Any]:
        """Fresh generators, clients and credentials, then the alias; logs the breakdown."""
        from preheat.cache import client
        from preheat.loader import init_report_of
        from preheat.uri import parse

        clock = self._clock
        self.restores += 1
        t0 = clock()
        # First: nothing below may draw from a generator every restored copy shares.
        reseeded = reseed()
        t_seed = clock()
        settings = self._settings()
        model = self._model()
        uri = str(init_report_of(model).get("uri") or settings.model_uri or "")
        parsed = parse(uri) if uri else None
        client.forget()
        if parsed is not None and parsed.bucket is not None:
            # Made now, with the environment's credentials as they are after the restore
            # (SnapStart serves them from the container credentials endpoint).
            client.default_client(settings)
        t_clients = clock()
        outcome = self._follow_alias(parsed, uri, model, settings)
        t_alias = clock()
        report: dict[str, Any] = {
            "restore": self.restores,
            "environment_id": self._state.environment_id,
            "reseeded": reseeded,
            "model": uri,
            # The version this environment serves as the restore ends (a pending load swaps
            # later and logs "preheat alias moved" then).
            "serving": self._model().manifest.version,
            **outcome.to_dict(),
            "reseed_s": round(t_seed - t0, 4),
            "clients_s": round(t_clients - t_seed, 4),
            "alias_s": round(t_alias - t_clients, 4),
            "total_s": round(t_alias - t0, 4),
        }
        self._publish(report)
        return report

    def _publish(self, report: Mapping[str, Any]) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._obs.logger.info("preheat restore", extra={"restore": dict(report)})
        metrics = self._obs.metrics
        for key, name in RESTORE_METRICS.items():
            value = report.get(key)
            if isinstance(value, int | float):
                metrics.add_metric(name, MetricUnit.Milliseconds, round(value * 1000, 3))
        if report.get("moved"):
            metrics.add_metric("RestoreAliasMoved", MetricUnit.Count, 1)
        if report.get("error"):
            metrics.add_metric("RestoreAliasErrors", MetricUnit.Count, 1)
        metrics.flush_metrics()

    def _follow_alias(
        self, parsed: ModelURI | None, uri: str, model: Model, settings: Settings
    ) -> AliasOutcome:
        """Re-read the alias the model was loaded by; load and swap in a version it moved to.

        Bounded: past the wait, the restore goes on serving the snapshot's version and the
        swap happens when the load is done (Lambda fails a restore that takes over 10 s).
        """
        outcome = AliasOutcome()
        if parsed is None or parsed.alias is None:
            outcome.done.set()  # a fixed version or a directory: nothing can have moved
            return outcome
        outcome.alias = parsed.alias
        worker = threading.Thread(
            target=self._reload,
            args=(parsed, uri, model, settings, outcome),
            name="preheat-alias",
            daemon=True,
        )
        worker.start()
        if not outcome.done.wait(self._alias_wait_s):
            self._obs.logger.warning(
                "preheat alias still loading",
                extra={
                    "alias": {
                        "model": uri,
                        "serving": model.manifest.version,
                        "moved_to": outcome.version,
                        "waited_s": self._alias_wait_s,
                    }
                },
            )
        return outcome

    def _reload(
        self,
        parsed: ModelURI,
        uri: str,
        current: Model,
        settings: Settings,
        outcome: AliasOutcome,
    ) -> None:
        from preheat import loader
        from preheat.cache import client
        from preheat.cache import s3 as s3tier
        from preheat.uri import model_uri

        assert parsed.bucket is not None and parsed.name is not None
        start = self._clock()
        try:
            engine = client.default_client(settings)
            version = s3tier.read_alias(
                engine, parsed, settings.fetch_retries, settings.fetch_timeout_s
            )
            outcome.version = version
            if version == current.manifest.version:
                return
            outcome.moved = True
            target = model_uri(parsed.bucket, parsed.prefix, parsed.name, version)
            new = loader.load(target, settings.with_(model_uri=target), take=_no_prefetch)
            loader.remember(uri, new)
            self._swap(new)
            outcome.loaded = True
            self._obs.logger.info(
                "preheat alias moved",
                extra={
                    "alias": {
                        "model": uri,
                        "from": current.manifest.version,
                        "to": version,
                        "seconds": round(self._clock() - start, 4),
                        "load": loader.init_report_of(new),
                    }
                },
            )
        except Exception as exc:  # the snapshot's version keeps serving; say why, once
            outcome.error = first_line(exc)
            self._obs.logger.warning(
                "preheat alias re-resolve failed",
                extra={
                    "alias": {
                        "model": uri,
                        "serving": current.manifest.version,
                        "error": outcome.error,
                    }
                },
            )
        finally:
            outcome.seconds = round(self._clock() - start, 4)
            outcome.done.set()


def register(
    model: ModelGetter,
    swap: Swap,
    obs: Observability,
    **options: Any,
) -> SnapStartHooks | None:
    """Register the hooks with `snapshot_restore_py`; None (logged at debug) without it.

    `model` returns the function's model (waiting for it if INIT left it loading); `swap`
    makes the function serve another one. Options: see `SnapStartHooks`.
    """
    try:
        import snapshot_restore_py
    except ImportError:
        log.debug(
            "SnapStart hooks not registered: snapshot_restore_py is not installed "
            "(Lambda's Python 3.12+ runtimes and base images carry it)"
        )
        return None
    hooks = SnapStartHooks(model, swap, obs, **options)
    snapshot_restore_py.register_before_snapshot(hooks.before_snapshot)
    snapshot_restore_py.register_after_restore(hooks.after_restore)
    return hooks
