"""Lambda's CPU and memory for a memory size, and the cores an emulator may give its environments.

The bench calls `describe(memory_mb)` to print what its environments run under, and
`split_cores()` with `pin_process()` (or `pinned()` around a spawn) to keep its S3 server
on cores the functions do not use.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

# "At 1,769 MB, a function has the equivalent of one vCPU" (AWS Lambda Developer Guide,
# "Configure Lambda function memory"); CPU is allocated in proportion to memory.
MB_PER_VCPU = 1769
# The most vCPUs a function gets, at 10,240 MB (AWS Compute Blog, "Operating Lambda:
# Debugging configurations"); the proportional share there is 5.79, so the cap only
# guards the arithmetic.
MAX_VCPUS = 6.0

InitCpu = Literal["share", "burst"]
INIT_CPU_RULES: tuple[InitCpu, ...] = ("share", "burst")
# AWS documents no separate CPU rule for INIT: the memory's share is all it promises for
# every phase. That INIT runs on two unthrottled vCPUs up to 3 GB is a third-party
# measurement, so it is opt-in ("burst") and the documented rule is the default.
DEFAULT_INIT_CPU: InitCpu = "share"
BURST_INIT_VCPUS = 2.0
BURST_INIT_MAX_MEMORY_MB = 3008


def lambda_vcpus(memory_mb: int) -> float:
    """The vCPUs Lambda gives a function of this memory size while it serves invokes."""
    return min(memory_mb / MB_PER_VCPU, MAX_VCPUS)


def lambda_init_vcpus(memory_mb: int, rule: InitCpu = DEFAULT_INIT_CPU) -> float:
    """The vCPUs during INIT under `rule`: the memory's share, or the measured burst."""
    share = lambda_vcpus(memory_mb)
    if rule == "burst" and memory_mb <= BURST_INIT_MAX_MEMORY_MB:
        return max(share, BURST_INIT_VCPUS)
    return share


def available_cpus() -> tuple[int, ...]:
    """The cores this process may run on (its affinity, which a container or taskset narrows)."""
    return tuple(sorted(os.sched_getaffinity(0)))


def format_cpus(cpus: Iterable[int]) -> str:
    """0,1,2,5 as "0-2,5": the cpuset list format."""
    ordered = sorted(set(cpus))
    runs: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(runs)


def parse_cpus(text: str) -> tuple[int, ...]:
    """ "0-2,5" as (0, 1, 2, 5); raises ValueError on anything else."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"empty item in core list {text!r}")
        first, dash, last = part.partition("-")
        lo, hi = int(first), int(last) if dash else int(first)
        if lo < 0 or hi < lo:
            raise ValueError(f"bad core range {part!r} in {text!r}")
        cpus.update(range(lo, hi + 1))
    return tuple(sorted(cpus))


@dataclass(frozen=True)
class ResourceModel:
    """What one function's environments run under here, beside what Lambda would give."""

    memory_mb: int
    init_cpu: InitCpu
    # Lambda's figures for this memory size.
    lambda_vcpus: float
    lambda_init_vcpus: float
    # The CPU quota applied here: Lambda's, capped at the cores the environments may use.
    vcpus: float
    init_vcpus: float
    # The cores the environments run on; None: any core this emulator may use.
    cpus: tuple[int, ...] | None
    # True when a cgroup enforces the quota and the memory limit.
    confined: bool
    cgroup_version: int | None = None
    # Why the model differs from Lambda's (unconfined, or capped), for people.
    notes: tuple[str, ...] = ()

    @property
    def memory_limit_mb(self) -> int | None:
        return self.memory_mb if self.confined else None

    @property
    def capped(self) -> bool:
        return self.vcpus < self.lambda_vcpus or self.init_vcpus < self.lambda_init_vcpus

    def describe(self) -> str:
        """One line, e.g. "1769 MB: 1.00 vCPU (INIT 1.00, rule share), memory limit 1769 MB,
        cores 0, confined (cgroup v1)"."""
        init = f"INIT {self.init_vcpus:.2f}, rule {self.init_cpu}"
        cpu = f"{self.vcpus:.2f} vCPU ({init})"
        if self.capped:
            cpu += f", capped from Lambda's {self.lambda_vcpus:.2f}"
        cores = f"cores {format_cpus(self.cpus)}" if self.cpus else "any core"
        if self.confined:
            where = f"confined (cgroup v{self.cgroup_version})"
            memory = f"memory limit {self.memory_mb} MB"
        else:
            where = "not confined: quota and memory limit not enforced"
            memory = "no memory limit"
        return f"{self.memory_mb} MB: {cpu}, {memory}, {cores}, {where}"


def resource_model(
    memory_mb: int,
    init_cpu: InitCpu = DEFAULT_INIT_CPU,
    cpus: Sequence[int] | None = None,
    *,
    confined: bool,
    cgroup_version: int | None = None,
    unconfined_reason: str | None = None,
) -> ResourceModel:
    """The model for a memory size on this machine, given whether cgroups can enforce it."""
    usable = len(cpus) if cpus else len(available_cpus())
    lam, lam_init = lambda_vcpus(memory_mb), lambda_init_vcpus(memory_mb, init_cpu)
    vcpus, init_vcpus = min(lam, usable), min(lam_init, usable)
    notes: list[str] = []
    if vcpus < lam or init_vcpus < lam_init:
        where = f"cores {format_cpus(cpus)}" if cpus else "this machine"
        notes.append(
            f"{memory_mb} MB gets {max(lam, lam_init):.2f} vCPUs on Lambda but {where} "
            f"has {usable}; its environments run with at most {usable:.2f}; "
            "use a smaller memory size or a machine with more cores to match Lambda"
        )
    if not confined and unconfined_reason:
        notes.append(unconfined_reason)
    return ResourceModel(
        memory_mb=memory_mb,
        init_cpu=init_cpu,
        lambda_vcpus=lam,
        lambda_init_vcpus=lam_init,
        vcpus=vcpus,
        init_vcpus=init_vcpus,
        cpus=tuple(sorted(cpus)) if cpus else None,
        confined=confined,
        cgroup_version=cgroup_version if confined else None,
        notes=tuple(notes),
    )


def describe(
    memory_mb: int,
    init_cpu: InitCpu = DEFAULT_INIT_CPU,
    cpus: Sequence[int] | None = None,
) -> str:
    """What an emulator started now would give an environment of `memory_mb`, as one line.

    It probes this machine's cgroups without changing them; a running emulator's own view
    is `Emulator.resource_model(name)`.
    """
    from preheat.tools.emulator.cgroups import probe

    host = probe()
    return resource_model(
        memory_mb,
        init_cpu,
        cpus,
        confined=host.usable,
        cgroup_version=host.version,
        unconfined_reason=host.reason,
    ).describe()


@dataclass(frozen=True)
class CoreSplit:
    """Cores for a helper server (S3) and cores for the functions, disjoint when possible."""

    server: tuple[int, ...]
    functions: tuple[int, ...]

    @property
    def disjoint(self) -> bool:
        return not set(self.server) & set(self.functions)


def split_cores(server_cores: int = 1, cpus: Sequence[int] | None = None) -> CoreSplit:
    """Give the last `server_cores` of `cpus` (default: this process's cores) to a server and
    the rest to the functions. On a single core both share it (`disjoint` is then False)."""
    pool = tuple(sorted(cpus)) if cpus else available_cpus()
    if server_cores < 1:
        raise ValueError(f"server_cores is {server_cores}; use 1 or more")
    if len(pool) <= server_cores:
        return CoreSplit(pool, pool)
    return CoreSplit(pool[-server_cores:], pool[:-server_cores])


def pin_process(pid: int, cpus: Sequence[int]) -> None:
    """Keep every thread of a running process (and whatever it starts later) on `cpus`."""
    mask = set(cpus)
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    for tid in tids:
        # A thread that exited between the listing and here needs no pinning.
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(tid, mask)


@contextlib.contextmanager
def pinned(cpus: Sequence[int] | None) -> Iterator[None]:
    """Run the body on `cpus` in this thread only, so a process it spawns starts there.

    A child inherits the affinity of the thread that forks it: a server started inside
    `with pinned(split.server): subprocess.Popen(...)` runs no instruction off those cores.
    """
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
