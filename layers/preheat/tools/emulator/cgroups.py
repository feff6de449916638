"""A cgroup per execution environment: CPU quota, memory limit, cores, and OOM detection.

Each emulator keeps its environments' cgroups under one parent named after its pid, made
inside the emulator's own cgroup (so any limit already on the emulator still holds). A
parent whose emulator has died is removed when the next emulator starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT_PREFIX = "preheat-emulator-"
_PARENT = re.compile(rf"^{re.escape(PARENT_PREFIX)}(\d+)$")
# The CFS period both cgroup versions default to; the quota is a share of it.
CFS_PERIOD_US = 100_000
# The kernel refuses quotas under 1 ms per period.
MIN_QUOTA_US = 1_000
_V1_CONTROLLERS = ("memory", "cpu")
_V2_CONTROLLERS = ("cpu", "memory")
# Moves a shell into each cgroup.procs given, then execs the command: the runtime's first
# instruction already runs confined, and so does every process it starts.
_ENTER = (
    'while [ "$1" != -- ]; do '
    'echo $$ > "$1" || { echo "preheat emulator: cannot move the runtime into $1" >&2; '
    'exit 125; }; shift; done; shift; exec "$@"'
)


class CgroupError(Exception):
    """A cgroup could not be made or configured; the message says which file and why."""


@dataclass(frozen=True)
class Host:
    """Whether this machine lets the emulator confine environments, and why not."""

    version: int | None
    usable: bool
    reason: str | None = None
    cpuset: bool = False


def _own_paths(proc_cgroup: Path = Path("/proc/self/cgroup")) -> dict[str, str]:
    """The process's cgroup per v1 controller ("memory" -> "/a/b"), and "" for v2."""
    paths: dict[str, str] = {}
    for line in proc_cgroup.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror or exc}") from exc


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cant(reason: str) -> str:
    return (
        f"environments run unconfined: {reason}; the CPU share and memory limit of each "
        "memory size are not enforced (run the emulator as root on a machine with writable "
        "cpu and memory cgroup controllers to enforce them)"
    )


def probe(root: Path = CGROUP_ROOT) -> Host:
    """Look at the machine without changing it."""
    if os.geteuid() != 0:
        return Host(None, False, _cant("the emulator is not running as root"))
    if (root / "cgroup.controllers").is_file():
        try:
            base = root / _own_paths()[""].lstrip("/")
            available = set((base / "cgroup.controllers").read_text().split())
        except (OSError, KeyError) as exc:
            return Host(2, False, _cant(f"cannot read this process's cgroup v2 ({exc})"))
        missing = [c for c in _V2_CONTROLLERS if c not in available]
        if missing:
            return Host(2, False, _cant(f"cgroup v2 at {base} lacks {', '.join(missing)}"))
        if not os.access(base, os.W_OK):
            return Host(2, False, _cant(f"cgroup v2 at {base} is not writable"))
        return Host(2, True, cpuset="cpuset" in available)
    missing = [c for c in _V1_CONTROLLERS if not (root / c / "tasks").is_file()]
    if missing:
        return Host(None, False, _cant(f"no cgroup controller {', '.join(missing)} under {root}"))
    for c in _V1_CONTROLLERS:
        if not os.access(root / c, os.W_OK):
            return Host(1, False, _cant(f"{root / c} is not writable"))
    cpuset = (root / "cpuset" / "tasks").is_file() and os.access(root / "cpuset", os.W_OK)
    return Host(1, True, cpuset=cpuset)


class EnvCgroup:
    """One environment's cgroup (a directory per v1 controller, or one v2 directory)."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs
        self.removed = False

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """`argv` started through a shell that first enters this cgroup."""
        files = [str(p) for p in self.procs_files]
        return ["/bin/sh", "-c", _ENTER, "preheat-cgroup-enter", *files, "--", *argv]

    def _dir(self, controller: str) -> Path:
        return self.dirs[controller if self.version == 1 else ""]

    def set_vcpus(self, vcpus: float) -> None:
        quota = max(round(vcpus * CFS_PERIOD_US), MIN_QUOTA_US)
        d = self._dir("cpu")
        if self.version == 1:
            _write(d / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            _write(d / "cpu.cfs_quota_us", str(quota))
        else:
            _write(d / "cpu.max", f"{quota} {CFS_PERIOD_US}")

    def set_memory(self, memory_mb: int) -> None:
        limit = memory_mb * 1024 * 1024
        d = self._dir("memory")
        if self.version == 1:
            _write(d / "memory.limit_in_bytes", str(limit))
            # Without swap in the limit too, a machine with swap would page instead of
            # killing, as Lambda (which has no swap) does.
            if (d / "memory.memsw.limit_in_bytes").exists():
                _write(d / "memory.memsw.limit_in_bytes", str(limit))
        else:
            _write(d / "memory.max", str(limit))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")

    def set_cpus(self, cpus: Sequence[int], mems: str) -> None:
        from preheat.tools.emulator.resources import format_cpus

        d = self._dir("cpuset")
        if self.version == 1:
            _write(d / "cpuset.mems", mems)
        _write(d / "cpuset.cpus", format_cpus(cpus))

    def oom_kills(self) -> int:
        """How many processes the kernel killed here for exceeding the memory limit."""
        d = self._dir("memory")
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (d / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            return 0
        return 0

    def peak_memory_bytes(self) -> int | None:
        d = self._dir("memory")
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((d / name).read_text())
        except (OSError, ValueError):
            return None

    def cpu_stat(self) -> dict[str, int]:
        """The cgroup's CPU counters (throttled periods and time among them)."""
        try:
            text = (self._dir("cpu") / "cpu.stat").read_text()
        except OSError:
            return {}
        stats: dict[str, int] = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                stats[key] = int(value)
        return stats

    def pids(self) -> set[int]:
        found: set[int] = set()
        for f in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in f.read_text().split())
        return found

    def remove(self, timeout_s: float = 5.0) -> bool:
        """Kill whatever still runs here, then remove the directories; False if some stay."""
        if self.removed:
            return True
        ok = _remove_dirs(list(self.dirs.values()), timeout_s)
        self.removed = ok
        return ok


def _kill_all(dirs: Sequence[Path]) -> None:
    for d in dirs:
        kill = d / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(OSError):
                kill.write_text("1")
            continue
        with contextlib.suppress(OSError):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)


def _remove_dirs(dirs: Sequence[Path], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    left = [d for d in dirs if d.exists()]
    while left:
        _kill_all(left)
        still: list[Path] = []
        for d in left:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                # EBUSY: a killed process is not reaped yet; try again shortly.
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise CgroupError(f"cannot remove {d}: {exc.strerror}") from exc
                still.append(d)
        left = still
        if left:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
    return True


class Cgroups:
    """One emulator's cgroups: a parent per controller, a child per environment."""

    def __init__(self, root: Path = CGROUP_ROOT, owner_pid: int | None = None) -> None:
        self.root = root
        self.owner_pid = owner_pid if owner_pid is not None else os.getpid()
        self.host = Host(None, False)
        self.parents: dict[str, Path] = {}
        self._mems = "0"
        self._children: list[EnvCgroup] = []

    @property
    def name(self) -> str:
        return f"{PARENT_PREFIX}{self.owner_pid}"

    def open(self, want_cpuset: bool = False) -> str | None:
        """Make the parents (removing dead emulators' ones first); None, or why not usable."""
        self.host = probe(self.root)
        if not self.host.usable:
            return self.host.reason
        try:
            if self.host.version == 1:
                self._open_v1(want_cpuset and self.host.cpuset)
            else:
                self._open_v2(want_cpuset and self.host.cpuset)
        except (CgroupError, OSError) as exc:
            self.close()
            self.host = Host(self.host.version, False, _cant(str(exc)))
            return self.host.reason
        return None

    def _bases(self, controllers: Sequence[str]) -> dict[str, Path]:
        own = _own_paths()
        if self.host.version == 1:
            return {c: self.root / c / own.get(c, "/").lstrip("/") for c in controllers}
        return {"": self.root / own[""].lstrip("/")}

    def _open_v1(self, cpuset: bool) -> None:
        controllers = [*_V1_CONTROLLERS, *(["cpuset"] if cpuset else [])]
        for c, base in self._bases(controllers).items():
            clean_stale(base)
            parent = base / self.name
            parent.mkdir(exist_ok=True)
            self.parents[c] = parent
            if c == "cpuset":
                # A v1 cpuset takes no process until its cores and memory nodes are set.
                self._mems = (base / "cpuset.mems").read_text().strip()
                _write(parent / "cpuset.cpus", (base / "cpuset.cpus").read_text().strip())
                _write(parent / "cpuset.mems", self._mems)

    def _open_v2(self, cpuset: bool) -> None:
        base = self._bases(())[""]
        clean_stale(base)
        wanted = [*_V2_CONTROLLERS, *(["cpuset"] if cpuset else [])]
        enabled = set((base / "cgroup.subtree_control").read_text().split())
        todo = [c for c in wanted if c not in enabled]
        if todo:
            try:
                (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in todo))
            except OSError as exc:
                if exc.errno == errno.EBUSY:
                    raise CgroupError(
                        f"cgroup v2 {base} holds processes, so it cannot hand controllers to "
                        "children; start the emulator in a cgroup of its own (e.g. "
                        "systemd-run --scope -p Delegate=yes)"
                    ) from exc
                raise CgroupError(f"cannot enable {todo} in {base}: {exc.strerror}") from exc
        parent = base / self.name
        parent.mkdir(exist_ok=True)
        _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        self.parents[""] = parent

    @property
    def cpuset(self) -> bool:
        if self.host.version == 1:
            return "cpuset" in self.parents
        return "cpuset" in (self.parents[""] / "cgroup.subtree_control").read_text().split()

    def create(
        self, name: str, memory_mb: int, vcpus: float, cpus: Sequence[int] | None
    ) -> EnvCgroup:
        """A configured cgroup for one environment's process; CgroupError if it fails."""
        if not self.parents:
            raise CgroupError("the emulator's cgroups are not open")
        dirs: dict[str, Path] = {}
        try:
            for c, parent in self.parents.items():
                if c == "cpuset" and not cpus:
                    continue
                d = parent / name
                d.mkdir()
                dirs[c] = d
            cg = EnvCgroup(self.host.version or 1, dirs)
            cg.set_memory(memory_mb)
            cg.set_vcpus(vcpus)
            if cpus and self.cpuset:
                cg.set_cpus(cpus, self._mems)
        except OSError as exc:
            _remove_dirs(list(dirs.values()), 1.0)
            raise CgroupError(f"cannot create cgroup {name}: {exc.strerror or exc}") from exc
        except CgroupError:
            _remove_dirs(list(dirs.values()), 1.0)
            raise
        self._children.append(cg)
        return cg

    def close(self) -> None:
        """Remove every environment's cgroup and the parents (killing what still runs)."""
        for cg in self._children:
            with contextlib.suppress(CgroupError):
                cg.remove()
        self._children.clear()
        for parent in self.parents.values():
            with contextlib.suppress(CgroupError, OSError):
                remove_tree(parent)
        self.parents.clear()


def remove_tree(parent: Path, timeout_s: float = 5.0) -> bool:
    """Remove a parent and its children, killing the processes left in them."""
    children = [d for d in parent.iterdir() if d.is_dir()] if parent.exists() else []
    ok = _remove_dirs(children, timeout_s)
    return _remove_dirs([parent], timeout_s) and ok


def clean_stale(base: Path) -> list[Path]:
    """Remove the parents of emulators that no longer run; return what was removed."""
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    for d in base.iterdir():
        m = _PARENT.match(d.name)
        if m and d.is_dir() and not pid_alive(int(m.group(1))):
            with contextlib.suppress(CgroupError, OSError):
                if remove_tree(d, 2.0):
                    removed.append(d)
    return removed
