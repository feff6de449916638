"""What the emulator remembers about each environment and invocation (Lambda's REPORT figures)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from preheat.tools.emulator.resources import ResourceModel

# restore_error: a SnapStart restore failed (an after-restore hook raised, ran past its
# limit or the runtime exited), so the handler never ran.
Outcome = Literal[
    "success", "error", "timeout", "crash", "init_error", "restore_error", "throttled"
]
# parked: initialised for SnapStart and stopped on /restore/next, standing for a snapshot.
EnvState = Literal["initializing", "parked", "idle", "busy", "dead"]


@dataclass(frozen=True)
class InvocationRecord:
    """One invocation's REPORT line, as data."""

    request_id: str
    function: str
    env_id: str
    invocation_type: str
    cold: bool
    outcome: Outcome
    # Process start to the runtime's first /next; None for warm invokes and for an
    # INIT retried inside the invoke (Lambda reports that time in Duration instead).
    init_duration_ms: float | None
    # Event handed to the runtime (or the retried INIT's start) to its response.
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    error_type: str | None
    started_at: float  # wall clock, seconds since the epoch
    # SnapStart's cold start: /restore/next answered to the runtime's first /next, i.e.
    # the after-restore hooks (no memory is restored here). None unless restored.
    restore_duration_ms: float | None = None
    # The function version that ran it: "$LATEST" or a published number.
    version: str = "$LATEST"

    @property
    def billed_restore_duration_ms(self) -> int | None:
        """Lambda bills the restore minus the snapshot's own load, which is not modelled."""
        if self.restore_duration_ms is None:
            return None
        return math.ceil(self.restore_duration_ms)

    def report_line(self) -> str:
        parts = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {self.billed_duration_ms} ms",
            f"Memory Size: {self.memory_size_mb} MB",
            f"Max Memory Used: {self.max_memory_used_mb} MB",
        ]
        if self.init_duration_ms is not None:
            parts.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if self.restore_duration_ms is not None:
            # Lambda's order: the restore after the memory, in place of Init Duration.
            parts.append(f"Restore Duration: {self.restore_duration_ms:.2f} ms")
            parts.append(f"Billed Restore Duration: {self.billed_restore_duration_ms} ms")
        if self.outcome in ("timeout", "crash", "init_error", "restore_error"):
            # A restore cut at its limit reports as Lambda's RESTORE_REPORT does.
            timed_out = self.outcome == "restore_error" and self.error_type == "Sandbox.Timedout"
            parts.append(f"Status: {'timeout' if timed_out else _STATUS[self.outcome]}")
            if self.error_type and not timed_out:
                parts.append(f"Error Type: {self.error_type}")
        return "\t".join(parts) + "\t"


_STATUS = {"timeout": "timeout", "crash": "error", "init_error": "error", "restore_error": "error"}


def billed_ms(
    duration_ms: float, init_duration_ms: float | None, restore_duration_ms: float | None = None
) -> int:
    """Lambda rounds up to the millisecond and, for managed runtimes, bills INIT too; with
    SnapStart it bills the Billed Restore Duration inside Billed Duration instead."""
    return (
        math.ceil(duration_ms)
        + (math.ceil(init_duration_ms) if init_duration_ms else 0)
        + (math.ceil(restore_duration_ms) if restore_duration_ms else 0)
    )


@dataclass(frozen=True)
class EnvironmentRecord:
    """One execution environment: its process, its INIT and every invocation it served."""

    env_id: str
    function: str
    pid: int | None
    state: EnvState
    init_duration_ms: float | None
    invocations: tuple[InvocationRecord, ...]
    # Why it ended: reaped, timeout, crash, out_of_memory, init_error, restore_error,
    # killed, shutdown; None while alive.
    end_reason: str | None
    # AWS_LAMBDA_LOG_STREAM_NAME inside the environment: how a handler names itself.
    log_stream: str
    # The CPU quota, memory limit and cores it ran under, and whether a cgroup enforced them.
    resources: ResourceModel | None = None
    # The function version it runs: "$LATEST" or a published number.
    version: str = "$LATEST"


@dataclass(frozen=True)
class FunctionStats:
    """Everything about one function's environments and invocations so far."""

    name: str
    environments: tuple[EnvironmentRecord, ...]
    invocations: tuple[InvocationRecord, ...]
    throttles: int

    @property
    def cold_starts(self) -> int:
        return sum(1 for i in self.invocations if i.cold)

    @property
    def warm_invocations(self) -> int:
        return sum(1 for i in self.invocations if not i.cold)

    @property
    def live_environments(self) -> tuple[EnvironmentRecord, ...]:
        return tuple(e for e in self.environments if e.state != "dead")
