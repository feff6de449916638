"""One runtime process and the Runtime API it polls: what an INIT retry replaces whole."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from preheat.tools.emulator.cgroups import CgroupError, EnvCgroup
from preheat.tools.emulator.errors import function_error
from preheat.tools.emulator.invocation import Invocation
from preheat.tools.emulator.logbuffer import LogBuffer, Pipe
from preheat.tools.emulator.resources import pinned
from preheat.tools.emulator.runtime_api import RuntimeServer

InitOutcome = Literal["ready", "init_error", "exited", "timeout"]
# SnapStart: INIT ends when the runtime parks on /restore/next; a restore ends at its first
# /next, or with /restore/error.
ParkOutcome = Literal["parked", "init_error", "exited", "timeout"]
RestoreOutcome = Literal["ready", "restore_error", "exited", "timeout"]

# The error types Lambda gives a runtime that exits on its own, and one the kernel killed
# for exceeding the function's memory.
EXIT_ERROR = "Runtime.ExitError"
OUT_OF_MEMORY = "Runtime.OutOfMemory"
# What awslambdaric names a failed after-restore hook (it also sends it as the header).
AFTER_RESTORE_ERROR = "Runtime.AfterRestoreError"

# Waits poll at this period too, so that no wait depends on a notification alone.
_TICK_S = 0.5


class Sandbox:
    """A runtime process's whole world: its Runtime API server, its state, its output pipe."""

    def __init__(
        self,
        host: str,
        log: LogBuffer,
        freeze: bool = True,
        cgroup: EnvCgroup | None = None,
        cpus: Sequence[int] | None = None,
        run_vcpus: float | None = None,
    ) -> None:
        self.cond = threading.Condition()
        # Where the process runs: its cgroup (None: unconfined), its cores, and the CPU
        # quota it gets once INIT is over (None: the same as during INIT).
        self.cgroup = cgroup
        self.cpus = tuple(cpus) if cpus else None
        self.run_vcpus = run_vcpus
        self.out_of_memory = False
        self.freeze = freeze
        self.frozen = False
        # Invokers waiting for INIT to end: their event is as good as pending, so the
        # runtime's first /next does not freeze it only to thaw it a moment later.
        self._awaiting_init = 0
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.pipe: Pipe | None = None
        self.started_at = 0.0
        self.ready_at: float | None = None
        self.init_error: bytes | None = None
        self.init_error_type: str | None = None
        self.exit_status: str | None = None
        self.exit_error_type = EXIT_ERROR
        # SnapStart: when the runtime parked on /restore/next, when it was let go, and
        # what it reported if an after-restore hook failed.
        self.parked_at: float | None = None
        self.restore_started_at: float | None = None
        self.restore_error: bytes | None = None
        self.restore_error_type: str | None = None
        self.closed = False
        self.pending: Invocation | None = None
        self.current: Invocation | None = None
        self._peak_kb = 0
        # Its own port: awslambdaric reaches the Runtime API at host:port, with no path prefix.
        self.server = RuntimeServer(host, self)
        self.address = f"{host}:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"runtime-api-{log.env_id}",
            daemon=True,
        ).start()

    # -- the process ------------------------------------------------------------------

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self.started_at = time.perf_counter()
        if self.cgroup is not None:
            # Behind the shell a missing interpreter would only show as exit status 127.
            if shutil.which(argv[0], path=env.get("PATH")) is None:
                self.fail_to_start(f"could not start {argv[0]}: No such file or directory")
                return
            argv = self.cgroup.wrap(argv)
        read_fd, write_fd = os.pipe()
        try:
            # Pinned in this thread only: the child inherits the cores from its first
            # instruction, confined or not.
            with pinned(self.cpus):
                self.proc = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=write_fd,
                    stderr=write_fd,
                    # Its own process group, so a kill takes whatever the handler spawned too.
                    start_new_session=True,
                )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            self.fail_to_start(f"could not start {argv[0]}: {exc.strerror or exc}")
            return
        os.close(write_fd)
        self.pipe = self.log.follow(read_fd)
        threading.Thread(
            target=self._reap, args=(self.proc,), name=f"wait-{self.log.env_id}", daemon=True
        ).start()

    def fail_to_start(self, status: str) -> None:
        """No process will run: INIT sees it exited, with `status` as the reason."""
        self.started_at = self.started_at or time.perf_counter()
        with self.cond:
            self.exit_status = status
            self.closed = True
            self.cond.notify_all()

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        status = f"signal: {_signal_name(-code)}" if code < 0 else f"exit status {code}"
        # The kernel's own count, not a guess from SIGKILL: a timeout's kill is one too.
        oom = code == -signal.SIGKILL and self.cgroup is not None and self.cgroup.oom_kills() > 0
        error_type = OUT_OF_MEMORY if oom else EXIT_ERROR
        with self.cond:
            self.exit_status = status
            self.exit_error_type = error_type
            self.out_of_memory = oom
            self.closed = True
            stranded = [i for i in (self.current, self.pending) if i is not None]
            self.cond.notify_all()
        for inv in stranded:
            inv.finish(
                "crash",
                function_error(error_type, f"Runtime exited with error: {status}", inv.request_id),
                error_type,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def peak_rss_mb(self) -> int:
        """Peak resident memory (VmHWM) of the runtime process, remembered past its exit."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                with open(f"/proc/{self.proc.pid}/status", "rb") as f:
                    for line in f:
                        if line.startswith(b"VmHWM:"):
                            self._peak_kb = max(self._peak_kb, int(line.split()[1]))
                            break
            except (OSError, ValueError):
                pass
        return (self._peak_kb + 1023) // 1024

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    # -- freezing between invocations ---------------------------------------------------

    def _signal_environment(self, sig: signal.Signals) -> None:
        """`sig` to the runtime's process group and to whatever left it but not its cgroup."""
        self._signal(sig)
        if self.cgroup is None or self.proc is None:
            return
        group = self.proc.pid
        for pid in self.cgroup.pids():
            # A child that called setsid() is out of the group but still in the sandbox:
            # Lambda freezes the whole sandbox, so it stops too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) != group:
                    os.kill(pid, sig)

    def _freeze(self) -> None:
        # Called with the condition held, from the runtime's own /next request: the
        # response (if any) was posted before it, so it has been handed to the invoker,
        # and everything the runtime wrote is already in the log pipe, which the emulator
        # reads on its own thread whether or not the writer is stopped.
        self._signal_environment(signal.SIGSTOP)
        self.frozen = True

    def _thaw(self) -> None:
        # Called with the condition held, before the event is handed to /next.
        if self.frozen:
            self._signal_environment(signal.SIGCONT)
            self.frozen = False

    def kill(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                self.proc.kill()

    def close(self, wait_s: float = 5.0) -> None:
        """Kill the process group, wait for it and stop the Runtime API server."""
        self.kill()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait_s)
        self.server.shutdown()
        self.server.server_close()
        if self.pipe is not None:
            self.pipe.join(1.0)
        if self.cgroup is not None:
            # Whatever left the process group (setsid, a daemon) still sits in the cgroup.
            with contextlib.suppress(CgroupError):
                self.cgroup.remove()

    def exit_reason(self, wait_s: float = 1.0) -> str:
        """How the process ended ("signal: killed"), waiting briefly for its reaper: a
        kill marks the sandbox closed before the process is gone."""
        deadline = time.perf_counter() + wait_s
        with self.cond:
            while self.exit_status is None and self.proc is not None:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self.cond.wait(min(left, _TICK_S))
            return self.exit_status or "unknown"

    def drain_log(self) -> None:
        if self.pipe is not None:
            self.pipe.drain()

    # -- what the invoke path waits for ------------------------------------------------

    def wait_ready(self, deadline: float) -> InitOutcome:
        with self.cond:
            self._awaiting_init += 1
            try:
                return self._wait_ready(deadline)
            finally:
                self._awaiting_init -= 1

    def _wait_ready(self, deadline: float) -> InitOutcome:
        # With the condition held.
        outcome = self._wait_for(deadline, lambda: self.ready_at is not None)
        return "ready" if outcome == "reached" else outcome

    def wait_parked(self, deadline: float) -> ParkOutcome:
        """SnapStart's INIT: wait for the runtime to park on /restore/next."""
        with self.cond:
            outcome = self._wait_for(deadline, lambda: self.parked_at is not None)
        return "parked" if outcome == "reached" else outcome

    def _wait_for(
        self, deadline: float, reached: Callable[[], bool]
    ) -> Literal["reached", "init_error", "exited", "timeout"]:
        """Wait, with the condition held, for INIT to reach a point, fail, exit or run out."""
        while True:
            if self.init_error is not None:
                return "init_error"
            if reached():
                return "reached"
            if self.closed:
                return "exited"
            left = deadline - time.perf_counter()
            if left <= 0:
                return "timeout"
            self.cond.wait(min(left, _TICK_S))

    def restore(self) -> None:
        """Answer the parked /restore/next: the runtime goes on to its after-restore hooks."""
        with self.cond:
            self.restore_started_at = time.perf_counter()
            self._thaw()
            self.cond.notify_all()

    def wait_restored(self, deadline: float) -> RestoreOutcome:
        """Wait for the restored runtime's first /next (hooks done) or its restore error."""
        with self.cond:
            # The invoke waits behind the restore, as behind an INIT: no freeze between.
            self._awaiting_init += 1
            try:
                while True:
                    if self.restore_error is not None:
                        return "restore_error"
                    if self.ready_at is not None:
                        return "ready"
                    if self.closed:
                        return "exited"
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        return "timeout"
                    self.cond.wait(min(left, _TICK_S))
            finally:
                self._awaiting_init -= 1

    def dispatch(self, inv: Invocation) -> None:
        with self.cond:
            if self.closed:
                status = self.exit_status or "the environment was shut down"
                error_type = self.exit_error_type
                stranded = True
            else:
                self._thaw()
                self.pending = inv
                self.cond.notify_all()
                stranded = False
        if stranded:
            inv.finish(
                "crash",
                function_error(error_type, f"Runtime exited with error: {status}", inv.request_id),
                error_type,
            )

    # -- the Runtime API side ----------------------------------------------------------

    def next_invocation(self) -> Invocation | None:
        with self.cond:
            if self.ready_at is None:
                self.ready_at = time.perf_counter()
                self._end_init_cpu()
                self.cond.notify_all()
            self.current = None
            waiting = self.pending is not None or self._awaiting_init > 0
            if self.freeze and not waiting and not self.closed:
                # Lambda freezes an environment between invocations, and after an INIT
                # with no event waiting: nothing in it runs, background threads and child
                # processes included, until the next event arrives.
                self._freeze()
            while self.pending is None:
                if self.closed:
                    return None
                self.cond.wait(_TICK_S)
            inv, self.pending = self.pending, None
            inv.delivered = True
            self.current = inv
            return inv

    def restore_next(self) -> bool:
        """/restore/next: hold the runtime until `restore()`; False if torn down first.

        Its INIT (before-snapshot hooks included) is over. The process is stopped while it
        waits, as a snapshot does not run: no thread in it makes progress until restored.
        """
        with self.cond:
            if self.parked_at is None:
                self.parked_at = time.perf_counter()
                self._end_init_cpu()
                self._freeze()
                self.cond.notify_all()
            while self.restore_started_at is None:
                if self.closed:
                    return False
                self.cond.wait(_TICK_S)
            return True

    def post_restore_error(self, body: bytes, error_type: str | None) -> None:
        with self.cond:
            self.restore_error = body or b"{}"
            self.restore_error_type = error_type or AFTER_RESTORE_ERROR
            self.cond.notify_all()

    def _end_init_cpu(self) -> None:
        # INIT is over at the runtime's first /next: from here on, the invoke's share.
        if self.cgroup is not None and self.run_vcpus is not None:
            with contextlib.suppress(CgroupError):
                self.cgroup.set_vcpus(self.run_vcpus)

    def post_response(self, request_id: str, body: bytes) -> bool:
        inv = self._current(request_id)
        if inv is None:
            return False
        inv.finish("success", body)
        return True

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> bool:
        inv = self._current(request_id)
        if inv is None:
            return False
        inv.finish("error", body or b"{}", error_type or "Unhandled")
        return True

    def post_oversized(self, request_id: str) -> None:
        inv = self._current(request_id)
        if inv is not None:
            inv.finish(
                "error",
                function_error(
                    "Function.ResponseSizeTooLarge",
                    "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
                ),
                "Function.ResponseSizeTooLarge",
            )

    def post_init_error(self, body: bytes, error_type: str | None) -> None:
        with self.cond:
            self.init_error = body or b"{}"
            self.init_error_type = error_type or "Runtime.Unknown"
            self.cond.notify_all()

    def _current(self, request_id: str) -> Invocation | None:
        with self.cond:
            inv = self.current
        return inv if inv is not None and inv.request_id == request_id else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG").lower().replace("kill", "killed")
    except ValueError:
        return str(number)
