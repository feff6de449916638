"""The emulator: functions, their pools of environments, the Invoke API server and the reaper."""

from __future__ import annotations

import atexit
import base64
import contextlib
import logging
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import orjson

from preheat import constants as c
from preheat.exceptions import ConfigurationError
from preheat.tools.emulator.cgroups import CGROUP_ROOT, Cgroups
from preheat.tools.emulator.config import (
    DEFAULT_MAX_CONCURRENCY,
    FunctionConfig,
    check_cpus,
    check_snapstart,
    function_arn,
)
from preheat.tools.emulator.environment import (
    SNAPSTART_NOTICE,
    Environment,
    EnvironmentLost,
    RestoreFailed,
    python_version,
)
from preheat.tools.emulator.errors import (
    ApiError,
    bad_json,
    invalid_parameter,
    not_found,
    throttled,
    too_large,
    version_failed,
)
from preheat.tools.emulator.invocation import Invocation
from preheat.tools.emulator.invoke_api import EVENT_PAYLOAD_LIMIT_BYTES, InvokeServer
from preheat.tools.emulator.logbuffer import LogSink
from preheat.tools.emulator.opt import build_opt
from preheat.tools.emulator.records import EnvironmentRecord, FunctionStats, InvocationRecord
from preheat.tools.emulator.resources import (
    ResourceModel,
    available_cpus,
    format_cpus,
    resource_model,
)
from preheat.tools.emulator.snapshots import SnapshotFailed, prepare
from preheat.tools.emulator.versions import LATEST, FunctionVersions, Random, Version

logger = logging.getLogger("preheat.tools.emulator")

INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
# An Event invoke that finds no free concurrency waits this long for some, then is dropped
# (Lambda keeps retrying for hours; a local run should not).
EVENT_MAX_WAIT_S = 60.0
# How many environments an event may find exiting before it is failed.
_MAX_LOST = 8

OnInvocation = Callable[[InvocationRecord], None]


@dataclass
class InvokeResult:
    status: int
    request_id: str
    body: bytes = b""
    function_error: bool = False
    log_tail: bytes | None = None
    record: InvocationRecord | None = None
    executed_version: str = LATEST

    def headers(self) -> dict[str, str]:
        h = {"x-amzn-RequestId": self.request_id}
        if self.status == 200:
            h["Content-Type"] = "application/json"
            h["X-Amz-Executed-Version"] = self.executed_version
        if self.function_error:
            h["X-Amz-Function-Error"] = "Unhandled"
        if self.log_tail is not None:
            h["X-Amz-Log-Result"] = base64.b64encode(self.log_tail).decode("ascii")
        return h


@dataclass
class _Pool:
    fn: FunctionConfig
    opt_dir: Path
    resources: ResourceModel
    environments: list[Environment] = field(default_factory=list)
    # Per version ("$LATEST", "1", ...): a version's invokes run only in its environments.
    idle: dict[str, list[Environment]] = field(default_factory=dict)  # most recently used last
    # SnapStart: the versions whose cold starts restore, and their parked environments.
    snapstart: set[str] = field(default_factory=set)
    parked: dict[str, list[Environment]] = field(default_factory=dict)
    refilling: set[str] = field(default_factory=set)
    # Concurrency is the function's, across its versions, as Lambda counts it.
    in_flight: int = 0
    throttles: int = 0

    def idle_of(self, version: str) -> list[Environment]:
        return self.idle.setdefault(version, [])

    def parked_of(self, version: str) -> list[Environment]:
        return self.parked.setdefault(version, [])


class Emulator:
    """A local Lambda: `with Emulator([FunctionConfig(...)]) as emu:` then invoke `emu.endpoint_url`.

    Each environment is a fresh `python -m awslambdaric` process polling its own Runtime
    API port, in a cgroup of its own with the CPU share and memory limit Lambda gives its
    memory size (see `resource_model`). On exit every process group is killed, every temp
    dir and cgroup removed and the server stopped, also when the body raised
    (KeyboardInterrupt included).

    `cpus` keeps every function's environments on those cores (a function's own
    `FunctionConfig.cpus` wins), e.g. off the cores of a local S3 server. `confine=False`
    runs them unconfined, as without root. What could not be modelled is said once, in
    `notices` and on the "preheat.tools.emulator" logger.

    Versions and aliases (see versions.py) are served over Lambda's control plane;
    `random_source` draws an alias's weighted routing, `snapshot_spares` is how many
    parked environments a SnapStart version keeps ready; 0 keeps only the one its publish
    parked, so no snapshot is ever taken in the background (a benchmark's restores then
    share the CPU with nothing).
    """

    def __init__(
        self,
        functions: Sequence[FunctionConfig],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        workdir: Path | None = None,
        on_invocation: OnInvocation | None = None,
        log_sink: LogSink | None = None,
        reap_interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        cpus: Sequence[int] | None = None,
        confine: bool = True,
        cgroup_root: Path = CGROUP_ROOT,
        random_source: Random = random.random,
        snapshot_spares: int = 1,
    ) -> None:
        names = [f.name for f in functions]
        if len(set(names)) != len(names):
            raise ConfigurationError("functions", names, "give each function a distinct name")
        if max_concurrency < 1:
            raise ConfigurationError("max_concurrency", max_concurrency, "use 1 or more")
        if not 0 <= port <= 65535:
            raise ConfigurationError("port", port, "use 0 (any free port) to 65535")
        if snapshot_spares < 0:
            raise ConfigurationError(
                "snapshot_spares", snapshot_spares, "use 0 (only the publish's own) or more"
            )
        self.cpus = check_cpus("cpus", cpus) if cpus is not None else None
        self.functions = {f.name: f for f in functions}
        self.catalog = {f.name: FunctionVersions(f, time.time) for f in functions}
        self._random = random_source
        self.snapshot_spares = snapshot_spares
        self.confine = confine
        self._cgroup_root = cgroup_root
        self._cgroups: Cgroups | None = None
        self.notices: list[str] = []
        self.host = host
        self.port = port
        self.max_concurrency = max_concurrency
        self._workdir_parent = workdir
        self._on_invocation = on_invocation
        self._log_sink = log_sink
        self._clock = clock
        idle = min((f.idle_timeout_s for f in functions), default=300.0)
        self._reap_interval = reap_interval_s or min(max(idle / 4, 0.05), 5.0)
        self._lock = threading.Lock()
        self._pools: dict[str, _Pool] = {}
        self._in_flight = 0
        self._closing = False
        self._started = False
        self._stop = threading.Event()
        self._helpers: list[threading.Thread] = []
        self._server: InvokeServer | None = None
        self.workdir: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._started:
            return self
        self._started = True
        try:
            if self._workdir_parent is not None:
                self._workdir_parent.mkdir(parents=True, exist_ok=True)
            self.workdir = Path(
                tempfile.mkdtemp(prefix="preheat-emulator-", dir=self._workdir_parent)
            )
            for fn in self.functions.values():
                # Asked once now, not during a cold start; SnapStart needs 3.12+, and a
                # refusal comes before any other notice.
                check_snapstart(fn, python_version(fn.python))
            if any(fn.snapstart for fn in self.functions.values()):
                self._notice(SNAPSTART_NOTICE)
            models = self._resource_models()
            for fn in self.functions.values():
                opt = build_opt(self.workdir / "functions" / fn.name / "opt", fn.layers)
                self._pools[fn.name] = _Pool(fn, opt, models[fn.name])
            try:
                self._server = InvokeServer((self.host, self.port), self)
            except OSError as exc:
                raise ConfigurationError(
                    "port",
                    self.port,
                    f"cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                    "pick another port, or 0 for any free one",
                ) from None
            self._spawn_helper(self._server.serve_forever, "invoke-api", poll_interval=0.1)
            self._spawn_helper(self._reap_loop, "reaper")
            atexit.register(self.close)
        except BaseException:
            self.close()
            raise
        return self

    def _resource_models(self) -> dict[str, ResourceModel]:
        """Check the cores, open the cgroups and settle what each function runs under."""
        machine = set(available_cpus())
        wanted = {fn.name: fn.cpus or self.cpus for fn in self.functions.values()}
        for name, cpus in wanted.items():
            outside = sorted(set(cpus or ()) - machine)
            if outside:
                raise ConfigurationError(
                    f"{name}: cpus" if self.functions[name].cpus else "cpus",
                    format_cpus(cpus or ()),
                    f"cores {format_cpus(outside)} are not available here; "
                    f"use cores among {format_cpus(machine)}",
                )
        reason: str | None = "confinement is turned off (confine=False)"
        if self.confine:
            cgroups = Cgroups(self._cgroup_root)
            reason = cgroups.open(want_cpuset=any(wanted.values()))
            self._cgroups = cgroups if reason is None else None
        confined = self._cgroups is not None
        version = self._cgroups.host.version if self._cgroups else None
        models = {
            fn.name: resource_model(
                fn.memory_mb,
                fn.init_cpu,
                wanted[fn.name],
                confined=confined,
                cgroup_version=version,
            )
            for fn in self.functions.values()
        }
        if reason is not None and self.confine:
            self._notice(reason)
        for name, model in models.items():
            for note in model.notes:
                self._notice(f"function {name}: {note}")
        if self._cgroups is not None and any(wanted.values()) and not self._cgroups.cpuset:
            self._notice(
                "no writable cpuset cgroup: environments are kept on their cores by CPU "
                "affinity, which a handler could widen"
            )
        return models

    def _notice(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)
            logger.warning("%s", message)

    def resource_model(self, name: str) -> ResourceModel:
        """What `name`'s environments run under: CPU quota, memory limit, cores, confinement."""
        with self._lock:
            pool = self._pools.get(name)
        if pool is None:
            if name not in self.functions:
                raise ConfigurationError("function", name, f"known: {', '.join(self.functions)}")
            raise RuntimeError("the emulator is not started; use it as a context manager")
        return pool.resources

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started; use it as a context manager")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def close(self) -> None:
        """Stop serving, kill every environment's process group, remove every temp dir."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            envs = [e for p in self._pools.values() for e in p.environments]
        atexit.unregister(self.close)
        self._stop.set()
        try:
            for env in envs:
                env.kill("shutdown")
            # Killed environments fail their invocations at once; let those answers reach
            # their callers before the connections close.
            deadline = time.monotonic() + 2.0
            while self._in_flight and time.monotonic() < deadline:
                time.sleep(0.01)
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
        finally:
            for env in envs:
                env.close("shutdown")
            for t in list(self._helpers):
                if t is not threading.current_thread():
                    t.join(5.0)
            if self._cgroups is not None:
                self._cgroups.close()
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _spawn_helper(
        self, target: Callable[..., object], name: str, *args: object, **kw: object
    ) -> None:
        t = threading.Thread(target=target, args=args, kwargs=kw, name=name, daemon=True)
        with self._lock:
            self._helpers = [h for h in self._helpers if h.is_alive()]
            self._helpers.append(t)
        t.start()

    # -- invoking ----------------------------------------------------------------------

    def invoke(
        self,
        name: str,
        payload: bytes = b"",
        *,
        invocation_type: str = "RequestResponse",
        log_type: str | None = None,
        qualifier: str | None = None,
        client_context: str | None = None,
    ) -> InvokeResult:
        """What the Invoke API does for one request; raises ApiError for AWS's error responses.

        `qualifier` (a version or an alias) picks the version, as `name:qualifier` does.
        """
        versions = self.catalog.get(name)
        if versions is None:
            raise not_found(function_arn(name, qualifier))
        version = versions.resolve(qualifier, self._random)
        if version.state != "Active":
            raise version_failed(version.state)
        if invocation_type not in INVOCATION_TYPES:
            raise invalid_parameter(
                f"Invalid invocation type {invocation_type!r}: use one of {', '.join(INVOCATION_TYPES)}"
            )
        limit = (
            EVENT_PAYLOAD_LIMIT_BYTES
            if invocation_type == "Event"
            else c.LAMBDA_PAYLOAD_LIMIT_BYTES
        )
        if len(payload) > limit:
            raise too_large(limit)
        if payload.strip():
            try:
                orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise bad_json(str(exc)) from None
        else:
            payload = b"{}"
        inv = Invocation(
            payload=payload,
            function_arn=function_arn(name, qualifier),
            invocation_type=invocation_type,
            client_context=client_context,
        )
        if invocation_type == "DryRun":
            return InvokeResult(204, inv.request_id, executed_version=version.number)
        if invocation_type == "Event":
            with self._lock:
                if self._closing:
                    raise ApiError(503, "ServiceException", "the emulator is shutting down")
            self._spawn_helper(self._run_event, f"event-{inv.request_id[:8]}", version, inv)
            return InvokeResult(202, inv.request_id, executed_version=version.number)
        try:
            inv, record, tail = self._execute(version, inv, self._acquire(version))
        except RestoreFailed as exc:
            # A failed SnapStart restore answers with an Invoke API error, but it was an
            # invocation all the same: its observers see it.
            self._notify(exc.record)
            raise
        self._notify(record)
        return InvokeResult(
            200,
            inv.request_id,
            body=inv.body,
            function_error=inv.function_error,
            log_tail=tail if (log_type or "").lower() == "tail" else None,
            record=record,
            executed_version=version.number,
        )

    def _run_event(self, version: Version, inv: Invocation) -> None:
        deadline = time.monotonic() + EVENT_MAX_WAIT_S
        delay = 0.05
        while True:
            try:
                env = self._acquire(version)
                break
            except ApiError as exc:
                if exc.status != 429 or self._stop.wait(delay) or time.monotonic() > deadline:
                    return
                delay = min(delay * 2, 1.0)
        try:
            inv, record, _ = self._execute(version, inv, env)
        except RestoreFailed as exc:
            # Lambda would retry the event later; the emulator drops it, as for other errors.
            record = exc.record
        except ApiError:
            return  # no environment for the event's second try: dropped, as above
        self._notify(record)

    def _execute(
        self, version: Version, inv: Invocation, env: Environment
    ) -> tuple[Invocation, InvocationRecord, bytes]:
        """Run `inv` in `env`. If a warm environment's runtime exits before taking the event,
        the event runs in another environment (a cold start when none is idle), as Lambda
        discards the environment and places the event elsewhere; it is not failed."""
        for attempt in range(_MAX_LOST):
            if attempt:
                env = self._acquire(version)
            try:
                record, tail = env.invoke(inv)
                return inv, record, tail
            except EnvironmentLost:
                inv = inv.again()
            finally:
                self._release(env)
        raise ApiError(500, "ServiceException", "environments kept exiting before the event")

    def _notify(self, record: InvocationRecord) -> None:
        if self._on_invocation is not None:
            # An observer's failure (a closed stdout, say) must not fail the invocation.
            with contextlib.suppress(Exception):
                self._on_invocation(record)

    def _acquire(self, version: Version) -> Environment:
        """An environment of `version` for one invoke: idle, else parked, else a new one.

        A new environment of a SnapStart version takes its snapshot here, before the
        invoke restores it, so that every cold start of that version is a restore.
        """
        retired: list[Environment] = []
        fresh: Environment | None = None
        refill = False
        try:
            with self._lock:
                if self._closing:
                    raise ApiError(503, "ServiceException", "the emulator is shutting down")
                pool = self._pools[version.name]
                idle = pool.idle_of(version.number)
                while idle:
                    env = idle.pop()
                    if env.alive:
                        self._take(pool, env)
                        return env
                    retired.append(env)
                reserved = pool.fn.reserved_concurrency
                limit = self.max_concurrency if reserved is None else reserved
                if pool.in_flight >= limit or self._in_flight >= self.max_concurrency:
                    pool.throttles += 1
                    raise throttled(reserved is not None and pool.in_flight >= reserved)
                parked = pool.parked_of(version.number)
                refill = version.number in pool.snapstart
                while parked:
                    env = parked.pop()
                    if env.alive:
                        self._take(pool, env)
                        return env
                    retired.append(env)
                fresh = self._new_environment(pool, version)
                # Counted as in flight at once; its state says "initializing" until INIT ends.
                pool.in_flight += 1
                self._in_flight += 1
        finally:
            for env in retired:
                self._retire(env, "crash")
            if refill:
                self._refill_later(version)
        assert fresh is not None
        if refill:
            try:
                prepare(fresh)
            except SnapshotFailed as exc:
                self._release(fresh)
                raise ApiError(400, "SnapStartException", exc.message, "Message") from None
        return fresh

    def _take(self, pool: _Pool, env: Environment) -> None:
        env.state = "busy"
        pool.in_flight += 1
        self._in_flight += 1

    def _new_environment(self, pool: _Pool, version: Version) -> Environment:
        """A new environment of `version` (not started: its first invoke or snapshot does)."""
        env_id = uuid.uuid4().hex
        assert self.workdir is not None
        env = Environment(
            version.fn,
            env_id,
            self.workdir / "envs" / env_id,
            pool.opt_dir,
            self.host,
            self._log_sink,
            self._clock,
            resources=pool.resources,
            cgroups=self._cgroups,
            version=version.number,
        )
        pool.environments.append(env)
        return env

    def _release(self, env: Environment) -> None:
        with self._lock:
            pool = self._pools[env.fn.name]
            pool.in_flight -= 1
            self._in_flight -= 1
            keep = env.alive and not self._closing
            if keep:
                env.state = "idle"
                pool.idle_of(env.version).append(env)
        if not keep:
            self._retire(env, "crash")

    def _retire(self, env: Environment, reason: str) -> None:
        env.kill(reason)
        # Closing waits for the process and the Runtime API server: off the caller's path.
        self._spawn_helper(env.close, f"retire-{env.env_id[:8]}", reason)

    # -- versions, aliases and SnapStart -----------------------------------------------

    def versions(self, name: str) -> FunctionVersions:
        """`name`'s $LATEST, published versions and aliases; 404 as Lambda for no such function."""
        found = self.catalog.get(name)
        if found is None:
            raise not_found(function_arn(name))
        return found

    def publish_version(
        self,
        name: str,
        *,
        code_sha256: str | None = None,
        description: str | None = None,
        revision_id: str | None = None,
    ) -> Version:
        """PublishVersion: freeze $LATEST's code and configuration as the next version.

        A SnapStart function's version is answered once its snapshot is ready (State Active)
        or has failed (State Failed, and invoking it fails as on Lambda).
        """
        versions = self.versions(name)
        if self.workdir is None:
            raise RuntimeError("the emulator is not started; use it as a context manager")
        snapstart = versions.latest.fn.snapstart
        version, new = versions.publish(
            self.workdir / "functions" / name / "versions",
            code_sha256=code_sha256,
            description=description,
            revision_id=revision_id,
            state="Pending" if snapstart else "Active",
        )
        if new and snapstart:
            try:
                self.prepare_snapshots(name, version.number)
            except SnapshotFailed as exc:
                code = (
                    "FunctionError.InitTimeout" if "Timeout" in exc.error_type else "FunctionError"
                )
                version.fail(f"{exc.error_type}: {exc.message}", code)
            else:
                version.state = "Active"
        return version

    def prepare_snapshots(self, name: str, version: str = LATEST) -> None:
        """SnapStart one version of a function, from now on.

        Parks one environment after its snapshot (INIT with the before-snapshot hooks; this
        call waits for it), then keeps `snapshot_spares` parked in the background: every
        cold start of that version takes a parked environment and restores it. Lambda
        snapstarts published versions only; `$LATEST` is for the emulator's SnapStart mode.
        Raises SnapshotFailed (its `error_type` as Lambda names it) when INIT or a hook fails.
        """
        target = self.versions(name).version(version)
        with self._lock:
            pool = self._pools.get(name)
            if pool is None or self._closing:
                raise RuntimeError("the emulator is not running; use it as a context manager")
            pool.snapstart.add(target.number)
            env = self._new_environment(pool, target)
        try:
            prepare(env)
        except SnapshotFailed:
            with self._lock:
                pool.snapstart.discard(target.number)
            self._retire(env, "init_error")
            raise
        self._park(pool, env)
        self._refill_later(target)

    def _park(self, pool: _Pool, env: Environment) -> None:
        with self._lock:
            keep = env.alive and not self._closing
            if keep:
                pool.parked_of(env.version).append(env)
        if not keep:
            self._retire(env, "shutdown")

    def _refill_later(self, version: Version) -> None:
        """Bring a SnapStart version back to its spare parked environments, off the caller's path."""
        with self._lock:
            pool = self._pools[version.name]
            if self._closing or version.number in pool.refilling:
                return
            pool.refilling.add(version.number)
        self._spawn_helper(self._refill, f"snapshot-{version.name}-{version.number}", version)

    def _refill(self, version: Version) -> None:
        pool = self._pools[version.name]
        try:
            while True:
                with self._lock:
                    if (
                        self._closing
                        or version.number not in pool.snapstart
                        or len(pool.parked_of(version.number)) >= self.snapshot_spares
                    ):
                        return
                    env = self._new_environment(pool, version)
                try:
                    prepare(env)
                except SnapshotFailed as exc:
                    # The next cold start takes its snapshot itself and reports the error.
                    logger.warning(
                        "function %s:%s: no spare snapshot: %s", version.name, version.number, exc
                    )
                    self._retire(env, "init_error")
                    return
                self._park(pool, env)
        finally:
            with self._lock:
                pool.refilling.discard(version.number)

    # -- the reaper and test hooks -----------------------------------------------------

    def _reap_loop(self) -> None:
        while not self._stop.wait(self._reap_interval):
            self.reap_idle()

    def reap_idle(self) -> list[str]:
        """Shut down environments idle past their function's idle timeout; return their ids."""
        now = self._clock()
        with self._lock:
            victims = [
                e
                for p in self._pools.values()
                for idle in p.idle.values()
                for e in idle
                if now - e.last_used >= e.fn.idle_timeout_s or not e.alive
            ]
            for e in victims:
                self._pools[e.fn.name].idle_of(e.version).remove(e)
        reaped = []
        for env in victims:
            if env.alive:
                reaped.append(env.env_id)
                self._retire(env, "reaped")
            else:
                self._retire(env, "crash")
        return reaped

    def kill_environment(self, env_id: str) -> bool:
        """Kill one environment's process as a crash would; its next invoke cold-starts."""
        with self._lock:
            for pool in self._pools.values():
                for env in pool.environments:
                    if env.env_id == env_id and env.end_reason is None:
                        waiting = [
                            lst
                            for lst in (pool.idle_of(env.version), pool.parked_of(env.version))
                            if env in lst
                        ]
                        for lst in waiting:
                            lst.remove(env)
                        idle = bool(waiting)
                        break
                else:
                    continue
                break
            else:
                return False
        if idle:
            self._retire(env, "killed")
        else:
            env.kill("killed")
        return True

    # -- what happened -----------------------------------------------------------------

    def stats(self, name: str) -> FunctionStats:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                raise ConfigurationError("function", name, f"known: {', '.join(self.functions)}")
            envs = list(pool.environments)
            throttles = pool.throttles
        records = [e.record() for e in envs]
        invocations = sorted(
            (i for r in records for i in r.invocations), key=lambda i: i.started_at
        )
        return FunctionStats(name, tuple(records), tuple(invocations), throttles)

    def environments(self, name: str | None = None) -> list[EnvironmentRecord]:
        names = [name] if name else list(self.functions)
        return [e for n in names for e in self.stats(n).environments]

    def cpu_stat(self, env_id: str) -> dict[str, int]:
        """A live environment's CPU counters from its cgroup (nr_throttled, throttled time
        and usage among them): how often its quota held it back. Empty when unconfined."""
        with self._lock:
            envs = [e for p in self._pools.values() for e in p.environments]
        for env in envs:
            if env.env_id == env_id:
                sb = env.sandbox
                return sb.cgroup.cpu_stat() if sb is not None and sb.cgroup is not None else {}
        raise ConfigurationError("env_id", env_id, "no such environment")

    def log(self, env_id: str) -> str:
        """The last 256 KB of one environment's log (runtime output and REPORT lines)."""
        with self._lock:
            for pool in self._pools.values():
                for env in pool.environments:
                    if env.env_id == env_id:
                        return env.log.text()
        raise ConfigurationError("env_id", env_id, "no such environment")
