"""An execution environment: INIT, one invocation at a time, and the REPORT of each."""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from preheat import constants as c
from preheat.tools.emulator.cgroups import CgroupError, Cgroups, EnvCgroup
from preheat.tools.emulator.config import REGION, FunctionConfig
from preheat.tools.emulator.errors import ApiError, function_error
from preheat.tools.emulator.invocation import Invocation
from preheat.tools.emulator.logbuffer import LogBuffer, LogSink
from preheat.tools.emulator.records import (
    EnvironmentRecord,
    EnvState,
    InvocationRecord,
    Outcome,
    billed_ms,
)
from preheat.tools.emulator.resources import ResourceModel
from preheat.tools.emulator.sandbox import AFTER_RESTORE_ERROR, OUT_OF_MEMORY, Sandbox

# Lambda returns the last 4 KB of the invocation's log with LogType=Tail.
TAIL_BYTES = 4096
# Passed through from the emulator's own environment, as Lambda passes its role's credentials.
_PASSTHROUGH = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Said once at start whenever a function uses SnapStart.
SNAPSTART_NOTICE = (
    "SnapStart: the emulator does not snapshot memory, so the cost of restoring a snapshot "
    "is not modelled; only the hooks and the invoke are measured (Restore Duration is the "
    "after-restore hooks alone)"
)
# Lambda does not set these in SnapStart functions: one snapshot serves many streams.
_NOT_IN_SNAPSTART = ("AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME")


class SnapshotError(Exception):
    """A SnapStart snapshot could not be prepared: INIT failed, timed out, or a
    before-snapshot hook raised (`error_type` Runtime.BeforeSnapshotError)."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        self.function = function
        self.error_type = error_type
        self.message = message
        # The bare message: callers that wrap it add the type and the function themselves.
        super().__init__(message)


class RestoreFailed(ApiError):
    """The Invoke API's answer when a restore failed: SnapStartException (an after-restore
    hook raised, or the runtime exited) or SnapStartTimeoutException (past the limit).

    `record` and `log_tail` are what a finished invoke returns, for whoever counts them.
    """

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        record: InvocationRecord,
        log_tail: bytes,
    ) -> None:
        super().__init__(status, error_type, message)
        self.record = record
        self.log_tail = log_tail


@functools.lru_cache(maxsize=16)
def python_version(python: str) -> str:
    """ "3.11" for the interpreter that runs the environments, as Lambda's runtime names it."""
    if python == sys.executable:
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        # The spawn itself will fail and report it; the variables only need a placeholder.
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    return done.stdout.strip()


class EnvironmentLost(Exception):
    """A warm environment's runtime exited before it took the event: run the event elsewhere."""

    def __init__(self, env_id: str) -> None:
        self.env_id = env_id
        super().__init__(f"environment {env_id} exited before taking the event")


class Environment:
    def __init__(
        self,
        fn: FunctionConfig,
        env_id: str,
        root: Path,
        opt_dir: Path,
        host: str,
        log_sink: LogSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        resources: ResourceModel | None = None,
        cgroups: Cgroups | None = None,
        version: str = "$LATEST",
    ) -> None:
        self.fn = fn
        # The function version this environment runs: "$LATEST" or a published number.
        self.version = version
        self.resources = resources
        # None: runs unconfined (no root, no controllers, or confinement turned off).
        self.cgroups = cgroups
        self._spawns = 0
        self.env_id = env_id
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True)
        self.opt_dir = opt_dir
        self.host = host
        self.log = LogBuffer(env_id, log_sink)
        self.log_stream = f"{datetime.now(UTC):%Y/%m/%d}/[{version}]{env_id}"
        self._clock = clock
        self.last_used = clock()
        self.state: EnvState = "initializing"
        self.sandbox: Sandbox | None = None
        self.init_duration_ms: float | None = None
        self.records: list[InvocationRecord] = []
        self.end_reason: str | None = None
        # SnapStart: whether this environment was started for a snapshot, and whether it
        # has been restored since (it then serves like any warm one).
        self.snapshot = False
        self.restored = False
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        sb = self.sandbox
        return self.end_reason is None and (sb is None or not sb.closed)

    def kill(self, reason: str) -> None:
        with self._lock:
            if self.end_reason is None:
                self.end_reason = reason
            self.state = "dead"
            sb = self.sandbox
        if sb is not None:
            sb.kill()

    def close(self, reason: str = "shutdown") -> None:
        """Kill the process, stop its Runtime API and remove its temp dir."""
        self.kill(reason)
        if self.sandbox is not None:
            self.sandbox.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def record(self) -> EnvironmentRecord:
        with self._lock:
            end = self.end_reason
            if end is None and self.sandbox is not None and self.sandbox.closed:
                end = "crash"
            return EnvironmentRecord(
                env_id=self.env_id,
                function=self.fn.name,
                pid=self.sandbox.pid if self.sandbox else None,
                state="dead" if end else self.state,
                init_duration_ms=self.init_duration_ms,
                invocations=tuple(self.records),
                end_reason=end,
                log_stream=self.log_stream,
                resources=self.resources,
                version=self.version,
            )

    # -- the process's environment ------------------------------------------------------

    def variables(self, runtime_api: str) -> dict[str, str]:
        fn, opt = self.fn, self.opt_dir
        py = f"python{python_version(fn.python)}"
        host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        env = {
            "PATH": f"{opt / 'bin'}{os.pathsep}{host_path}",
            "LD_LIBRARY_PATH": os.pathsep.join(
                p for p in (str(opt / "lib"), os.environ.get("LD_LIBRARY_PATH", "")) if p
            ),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": os.pathsep.join(
                [
                    str(fn.code_dir.resolve()),
                    str(opt / "python/lib" / py / "site-packages"),
                    str(opt / "python"),
                ]
            ),
            "TMPDIR": str(self.tmp),
            c.ENV_CACHE_DIR: str(self.tmp / "preheat"),
            c.ENV_LOCAL_PATHS: str(opt / "preheat" / "models"),
            c.ENV_OPT_DIR: str(opt),
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_VERSION": self.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start" if self.snapshot else "on-demand",
            "_HANDLER": fn.handler,
            "LAMBDA_TASK_ROOT": str(fn.code_dir.resolve()),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{py}",
        }
        for key in _PASSTHROUGH:
            if key in os.environ:
                env[key] = os.environ[key]
        if self.snapshot:
            for key in _NOT_IN_SNAPSTART:
                del env[key]
        env.update(fn.env)
        return env

    def _cgroup(self) -> tuple[EnvCgroup | None, str | None]:
        """A fresh cgroup for the next process (an INIT retry gets its own OOM count)."""
        res = self.resources
        if self.cgroups is None or res is None or not res.confined:
            return None, None
        self._spawns += 1
        try:
            cg = self.cgroups.create(
                f"env-{self.env_id}-{self._spawns}", res.memory_mb, res.init_vcpus, res.cpus
            )
        except CgroupError as exc:
            return None, str(exc)
        return cg, None

    def _spawn(self) -> Sandbox:
        res = self.resources
        cgroup, failure = self._cgroup()
        sb = Sandbox(
            self.host,
            self.log,
            freeze=self.fn.freeze,
            cgroup=cgroup,
            cpus=res.cpus if res else None,
            run_vcpus=res.vcpus if res and res.vcpus != res.init_vcpus else None,
        )
        with self._lock:
            self.sandbox = sb
            killed = self.end_reason is not None
        if failure is not None and not killed:
            # Running it unconfined would report figures the model does not back.
            sb.fail_to_start(f"could not confine the runtime: {failure}")
        elif not killed:
            sb.start(
                [self.fn.python, "-m", "awslambdaric", self.fn.handler],
                self.variables(sb.address),
                self.fn.code_dir,
            )
        else:
            # Killed while starting (emulator closing): nobody else will close this one.
            sb.close()
        return sb

    # -- SnapStart -----------------------------------------------------------------------

    @property
    def parked(self) -> bool:
        """Initialised for SnapStart and waiting on /restore/next: a snapshot to restore."""
        sb = self.sandbox
        return (
            self.alive
            and sb is not None
            and sb.parked_at is not None
            and sb.restore_started_at is None
        )

    def prepare_snapshot(self) -> None:
        """SnapStart's INIT: start the runtime with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start
        and return once it has run its before-snapshot hooks and parked on /restore/next
        (stopped there, as a snapshot does not run), within the INIT limit.

        Raises SnapshotError (error_type, message) when INIT or a hook fails or time runs
        out; the environment is then dead. The memory is not snapshotted: this process is
        the snapshot, and one restore uses it up.
        """
        if self.sandbox is not None:
            raise RuntimeError(f"environment {self.env_id} has already started")
        self.snapshot = True
        version = python_version(self.fn.python)
        self.log.write(
            f"INIT_START Runtime Version: python:{version} (preheat emulator)\n".encode()
        )
        sb = self._spawn()
        result = sb.wait_parked(sb.started_at + self.fn.init_timeout_s)
        if result == "parked":
            assert sb.parked_at is not None
            self.init_duration_ms = (sb.parked_at - sb.started_at) * 1000.0
            # SnapStart reports INIT here, not in a REPORT: no invoke pays for it.
            self.log.write(f"INIT_REPORT Init Duration: {self.init_duration_ms:.2f} ms\n".encode())
            with self._lock:
                if self.end_reason is None:
                    self.state = "parked"
            return
        sb.drain_log()
        elapsed = (time.perf_counter() - sb.started_at) * 1000.0
        if result == "init_error":
            error_type = sb.init_error_type or "Runtime.Unknown"
            message = _error_message(sb.init_error) or "INIT failed"
            status, reason = "error", "init_error"
        elif result == "timeout":
            error_type = "Sandbox.Timedout"
            message = f"INIT timed out after {self.fn.init_timeout_s:.2f} seconds"
            status, reason = "timeout", "timeout"
        else:
            error_type = sb.exit_error_type
            message = f"Runtime exited with error: {sb.exit_reason()}"
            status, reason = "error", "out_of_memory" if sb.out_of_memory else "crash"
        detail = "" if status == "timeout" else f"\tError Type: {error_type}"
        self.log.write(
            f"INIT_REPORT Init Duration: {elapsed:.2f} ms\tPhase: init\tStatus: {status}"
            f"{detail}\n".encode()
        )
        self.kill(reason)
        raise SnapshotError(self.fn.name, error_type, message)

    def _restore(self, inv: Invocation, started_wall: float, log_from: int) -> float:
        """Let a parked runtime go and wait for its after-restore hooks; the Restore Duration.

        A failed restore kills the environment, finishes `inv` and raises RestoreFailed.
        """
        sb = self._sandbox()
        version = python_version(self.fn.python)
        self.log.write(
            f"RESTORE_START Runtime Version: python:{version} (preheat emulator)\n".encode()
        )
        sb.restore()
        assert sb.restore_started_at is not None
        limit = self.fn.restore_timeout_s
        result = sb.wait_restored(sb.restore_started_at + limit)
        if result == "ready":
            assert sb.ready_at is not None
            restore_ms = (sb.ready_at - sb.restore_started_at) * 1000.0
            self.log.write(f"RESTORE_REPORT Restore Duration: {restore_ms:.2f} ms\n".encode())
            self.restored = True
            return restore_ms
        elapsed = (time.perf_counter() - sb.restore_started_at) * 1000.0
        sb.drain_log()
        peak_mb = sb.peak_rss_mb()
        api: tuple[int, str]
        if result == "timeout":
            error_type: str | None = None
            api = (408, "SnapStartTimeoutException")
            message = (
                f"Lambda could not restore {self.fn.name} within {limit:g} s: its "
                "after-restore hooks were still running"
            )
        else:
            if result == "restore_error":
                error_type = sb.restore_error_type or AFTER_RESTORE_ERROR
                detail = _error_message(sb.restore_error)
            else:
                error_type = sb.exit_error_type
                detail = f"Runtime exited with error: {sb.exit_reason()}"
            api = (400, "SnapStartException")
            message = f"The after-restore hooks of {self.fn.name} failed: {error_type}: {detail}"
        status = "timeout" if error_type is None else f"error\tError Type: {error_type}"
        self.log.write(
            f"RESTORE_REPORT Restore Duration: {elapsed:.2f} ms\tStatus: {status}\n".encode()
        )
        # Cut: a timed-out hook must not run on, and a failed runtime exits anyway.
        self.kill("restore_error")
        inv.finish(
            "restore_error",
            function_error(api[1], message, inv.request_id),
            error_type or "Sandbox.Timedout",
        )
        rec = InvocationRecord(
            request_id=inv.request_id,
            function=self.fn.name,
            env_id=self.env_id,
            invocation_type=inv.invocation_type,
            cold=True,
            outcome="restore_error",
            init_duration_ms=None,
            duration_ms=0.0,
            billed_duration_ms=math.ceil(elapsed),
            memory_size_mb=self.fn.memory_mb,
            max_memory_used_mb=peak_mb,
            error_type=error_type or "Sandbox.Timedout",
            started_at=started_wall,
            restore_duration_ms=elapsed,
            version=self.version,
        )
        with self._lock:
            self.records.append(rec)
        self.last_used = self._clock()
        raise RestoreFailed(api[0], api[1], message, rec, self.log.since(log_from, TAIL_BYTES))

    # -- one invocation ----------------------------------------------------------------

    def invoke(self, inv: Invocation) -> tuple[InvocationRecord, bytes]:
        """Run `inv` here, first starting the process if cold; return its record and log tail.

        The first invoke of an environment that took a snapshot (`prepare_snapshot`) is a
        SnapStart cold start: it is let go from /restore/next, its after-restore hooks run,
        and the REPORT carries Restore Duration instead of Init Duration. A failed restore
        raises RestoreFailed (the Invoke API's answer), after recording the invoke.

        Every wait is bounded: by the INIT limit, the restore limit, then by the
        function's timeout.
        """
        called_at = time.perf_counter()
        started_wall = time.time()
        log_from = self.log.end
        if self.snapshot and not self.restored:
            return self._invoke_restoring(inv, called_at, started_wall, log_from)
        cold = self.sandbox is None
        init_ms: float | None = None
        retried_at: float | None = None
        if cold:
            version = python_version(self.fn.python)
            self.log.write(
                f"INIT_START Runtime Version: python:{version} (preheat emulator)\n".encode()
            )
            failed, retried_at = self._init(inv)
            if failed:
                return self._finish(
                    inv, cold, None, retried_at or called_at, started_wall, log_from
                )
            self.state = "busy"
            sb = self._sandbox()
            if retried_at is None and sb.ready_at is not None:
                init_ms = (sb.ready_at - sb.started_at) * 1000.0
                self.init_duration_ms = init_ms
        # After an INIT retry the function's timeout runs from the retry's start.
        t0 = retried_at if retried_at is not None else time.perf_counter()
        return self._run(inv, cold, init_ms, None, t0, started_wall, log_from)

    def _invoke_restoring(
        self, inv: Invocation, called_at: float, started_wall: float, log_from: int
    ) -> tuple[InvocationRecord, bytes]:
        if not self.parked:
            # Killed, or its process died, while it waited to be restored: a crash, and
            # the dispatch to a closed sandbox finishes `inv` as one.
            self.kill("crash")
            self._sandbox().dispatch(inv)
            return self._finish(inv, True, None, called_at, started_wall, log_from)
        self.state = "busy"
        restore_ms = self._restore(inv, started_wall, log_from)
        return self._run(inv, True, None, restore_ms, time.perf_counter(), started_wall, log_from)

    def _run(
        self,
        inv: Invocation,
        cold: bool,
        init_ms: float | None,
        restore_ms: float | None,
        t0: float,
        started_wall: float,
        log_from: int,
    ) -> tuple[InvocationRecord, bytes]:
        """Hand `inv` to the ready runtime and wait for its answer within the timeout."""
        sb = self._sandbox()
        deadline = t0 + self.fn.timeout_s
        inv.deadline_ms = int((time.time() + deadline - time.perf_counter()) * 1000)
        self.log.write(f"START RequestId: {inv.request_id} Version: {self.version}\n".encode())
        sb.peak_rss_mb()  # a reading before the handler runs, in case it never returns
        sb.dispatch(inv)
        if not inv.done.wait(max(deadline - time.perf_counter(), 0.0)):
            self._time_out(inv)
        if not cold and inv.outcome == "crash" and not inv.delivered:
            # The runtime exited between its last answer and its next /next (a process
            # that ends itself after an error, say): Lambda discards the environment and
            # the event runs in a new one; it never reached this one.
            sb.drain_log()
            self.kill("crash")
            raise EnvironmentLost(self.env_id)
        return self._finish(inv, cold, init_ms, t0, started_wall, log_from, restore_ms)

    def _sandbox(self) -> Sandbox:
        assert self.sandbox is not None
        return self.sandbox

    def _init(self, inv: Invocation) -> tuple[bool, float | None]:
        """INIT, retried once inside the invoke after a timeout, as Lambda does.

        Returns (failed, start of the retry or None); a failure has finished `inv`.
        """
        sb = self._spawn()
        retried_at: float | None = None
        result = sb.wait_ready(sb.started_at + self.fn.init_timeout_s)
        if result == "timeout":
            elapsed = (time.perf_counter() - sb.started_at) * 1000.0
            self.log.write(
                f"INIT_REPORT Init Duration: {elapsed:.2f} ms\tPhase: init\tStatus: timeout\n".encode()
            )
            sb.close()
            # The retry runs under the function's timeout and its time counts in the
            # invoke's Duration, not as an Init Duration.
            sb = self._spawn()
            retried_at = sb.started_at
            result = sb.wait_ready(retried_at + self.fn.timeout_s)
            if result == "timeout":
                self._time_out(inv)
                return True, retried_at
        if result == "init_error":
            sb.drain_log()
            elapsed = (time.perf_counter() - sb.started_at) * 1000.0
            self.log.write(
                f"INIT_REPORT Init Duration: {elapsed:.2f} ms\tPhase: init\tStatus: error"
                f"\tError Type: {sb.init_error_type}\n".encode()
            )
            self.kill("init_error")
            inv.finish("init_error", sb.init_error or b"{}", sb.init_error_type)
            return True, retried_at
        if result == "exited":
            sb.drain_log()
            status = sb.exit_reason()
            error_type = sb.exit_error_type
            if sb.out_of_memory:
                elapsed = (time.perf_counter() - sb.started_at) * 1000.0
                self.log.write(
                    f"INIT_REPORT Init Duration: {elapsed:.2f} ms\tPhase: init\tStatus: error"
                    f"\tError Type: {error_type}\n".encode()
                )
            self.kill("out_of_memory" if sb.out_of_memory else "crash")
            inv.finish(
                "crash",
                function_error(error_type, f"Runtime exited with error: {status}", inv.request_id),
                error_type,
            )
            return True, retried_at
        return False, retried_at

    def _time_out(self, inv: Invocation) -> None:
        seconds = self.fn.timeout_s
        message = f"Task timed out after {seconds:.2f} seconds"
        if inv.finish(
            "timeout",
            function_error("Sandbox.Timedout", message, inv.request_id),
            "Sandbox.Timedout",
        ):
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            self.log.write(f"{stamp} {inv.request_id} {message}\n".encode())
        self.kill("timeout")

    def _finish(
        self,
        inv: Invocation,
        cold: bool,
        init_ms: float | None,
        t0: float,
        started_wall: float,
        log_from: int,
        restore_ms: float | None = None,
    ) -> tuple[InvocationRecord, bytes]:
        sb = self._sandbox()
        sb.drain_log()
        end = inv.finished_at or time.perf_counter()
        duration = max(end - t0, 0.0) * 1000.0
        outcome: Outcome = inv.outcome or "crash"
        oom = outcome == "crash" and inv.error_type == OUT_OF_MEMORY
        if outcome == "crash":
            self.kill("out_of_memory" if oom else "crash")
            self.log.write(inv.body + b"\n")
        rec = InvocationRecord(
            request_id=inv.request_id,
            function=self.fn.name,
            env_id=self.env_id,
            invocation_type=inv.invocation_type,
            cold=cold,
            outcome=outcome,
            init_duration_ms=init_ms,
            duration_ms=duration,
            billed_duration_ms=billed_ms(duration, init_ms, restore_ms),
            memory_size_mb=self.fn.memory_mb,
            # Lambda reports the whole memory size as used when it ran out of it.
            max_memory_used_mb=self.fn.memory_mb if oom else sb.peak_rss_mb(),
            error_type=inv.error_type if outcome != "success" else None,
            started_at=started_wall,
            restore_duration_ms=restore_ms,
            version=self.version,
        )
        self.log.write(f"END RequestId: {inv.request_id}\n{rec.report_line()}\n".encode())
        with self._lock:
            self.records.append(rec)
        self.last_used = self._clock()
        return rec, self.log.since(log_from, TAIL_BYTES)


def _error_message(body: bytes | None) -> str:
    """The errorMessage of a runtime's error document, or its raw text."""
    if not body:
        return ""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()
    message = doc.get("errorMessage") if isinstance(doc, dict) else None
    return str(message) if message is not None else body.decode("utf-8", "replace").strip()
