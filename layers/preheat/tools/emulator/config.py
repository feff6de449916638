"""What the emulator needs to know about one function: code, handler, limits, layers."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from preheat.exceptions import ConfigurationError
from preheat.tools.emulator.resources import DEFAULT_INIT_CPU, INIT_CPU_RULES, InitCpu

# Where the emulated functions live; the account id is the placeholder moto uses too.
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
# Lambda's own bounds for the settings the emulator honours.
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10_240
MAX_TIMEOUT_S = 900.0
# Lambda's limit on the after-restore hooks of a SnapStart restore.
RESTORE_TIMEOUT_S = 10.0
# SnapStart's runtimes for Python start at 3.12 (python3.12 is the first with the hooks).
SNAPSTART_MIN_PYTHON = (3, 12)
# Environments busy at once across all functions; Lambda's account default is far higher,
# but each local environment is a real process on this machine.
DEFAULT_MAX_CONCURRENCY = 16
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HANDLER = re.compile(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")


@dataclass(frozen=True)
class FunctionConfig:
    """One function as Lambda would see it; validated at construction."""

    name: str
    code_dir: Path
    handler: str
    env: Mapping[str, str] = field(default_factory=dict)
    memory_mb: int = 512
    timeout_s: float = 30.0
    init_timeout_s: float = 10.0
    # None: bounded only by the emulator's global concurrency limit.
    reserved_concurrency: int | None = None
    idle_timeout_s: float = 300.0
    # Each directory's content appears merged under the environment's /opt-like path,
    # later layers over earlier ones, as Lambda stacks layers.
    layers: tuple[Path, ...] = ()
    python: str = sys.executable
    # Stop the environment's processes (SIGSTOP) between invocations, as Lambda always
    # freezes its sandboxes: work left running in background threads after INIT or a
    # response waits for the next event instead of finishing unseen. Off only to look at
    # what an unfrozen environment would do.
    freeze: bool = True
    # The CPU during INIT: "share" (the memory's share, all AWS documents) or "burst"
    # (two vCPUs up to 3,008 MB, as measured by third parties); see resources.py.
    init_cpu: InitCpu = DEFAULT_INIT_CPU
    # The cores this function's environments run on; None: the emulator's `cpus`.
    cpus: tuple[int, ...] | None = None
    # SnapStart: environments are initialised ahead (before-snapshot hooks, then parked on
    # /restore/next) and a cold start restores one (after-restore hooks, Restore Duration).
    # Lambda's other SnapStart limits (no provisioned concurrency, no EFS, /tmp at most
    # 512 MB) concern settings the emulator does not model, so there is nothing to refuse.
    snapstart: bool = False
    # Lambda's fixed limit on the after-restore hooks; lowered only by tests.
    restore_timeout_s: float = RESTORE_TIMEOUT_S

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigurationError(
                "function name", self.name, "use 1 to 64 letters, digits, '-' or '_'"
            )
        object.__setattr__(self, "code_dir", Path(self.code_dir))
        object.__setattr__(self, "layers", tuple(Path(p) for p in self.layers))
        object.__setattr__(self, "env", dict(self.env))
        if os.sep in self.python:
            # Environments start in their code directory: a relative interpreter path would
            # name another file there. Not resolved, so a venv's python stays the venv's.
            object.__setattr__(self, "python", os.path.abspath(self.python))
        if not self.code_dir.is_dir():
            raise ConfigurationError(
                f"{self.name}: code_dir", str(self.code_dir), "use an existing directory"
            )
        if not _HANDLER.match(self.handler):
            raise ConfigurationError(
                f"{self.name}: handler", self.handler, "use module.function, e.g. app.handler"
            )
        if not MIN_MEMORY_MB <= self.memory_mb <= MAX_MEMORY_MB:
            raise ConfigurationError(
                f"{self.name}: memory_mb",
                self.memory_mb,
                f"use {MIN_MEMORY_MB} to {MAX_MEMORY_MB} MB",
            )
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise ConfigurationError(
                f"{self.name}: timeout_s",
                self.timeout_s,
                f"use more than 0 and at most {MAX_TIMEOUT_S:.0f} s",
            )
        if not self.init_timeout_s > 0:
            raise ConfigurationError(
                f"{self.name}: init_timeout_s",
                self.init_timeout_s,
                "use a positive number of seconds",
            )
        if not self.idle_timeout_s > 0:
            raise ConfigurationError(
                f"{self.name}: idle_timeout_s",
                self.idle_timeout_s,
                "use a positive number of seconds",
            )
        if self.reserved_concurrency is not None and self.reserved_concurrency < 0:
            raise ConfigurationError(
                f"{self.name}: reserved_concurrency",
                self.reserved_concurrency,
                "use 0 or more (0 throttles every invoke), or None for the global limit",
            )
        if not self.restore_timeout_s > 0:
            raise ConfigurationError(
                f"{self.name}: restore_timeout_s",
                self.restore_timeout_s,
                "use a positive number of seconds",
            )
        if self.init_cpu not in INIT_CPU_RULES:
            raise ConfigurationError(
                f"{self.name}: init_cpu", self.init_cpu, f"use one of {', '.join(INIT_CPU_RULES)}"
            )
        if self.cpus is not None:
            object.__setattr__(self, "cpus", check_cpus(f"{self.name}: cpus", self.cpus))
        for layer in self.layers:
            if not layer.is_dir():
                raise ConfigurationError(
                    f"{self.name}: layer", str(layer), "use an existing directory"
                )
        for key, value in self.env.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key:
                raise ConfigurationError(
                    f"{self.name}: env",
                    f"{key}={value}",
                    "use non-empty string keys and string values",
                )

    @property
    def arn(self) -> str:
        return function_arn(self.name)


def check_snapstart(fn: FunctionConfig, version: str) -> None:
    """Refuse SnapStart on an interpreter Lambda has no SnapStart for (`version`: "3.11")."""
    if not fn.snapstart:
        return
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        found = (0, 0)
    if found < SNAPSTART_MIN_PYTHON:
        need = ".".join(map(str, SNAPSTART_MIN_PYTHON))
        raise ConfigurationError(
            f"{fn.name}: snapstart",
            True,
            f"SnapStart needs Python {need}+ and {fn.python} is Python {version}; "
            f"pass --python with a Python {need}+ interpreter (make py312 builds .venv312)",
        )


def check_cpus(what: str, cpus: object) -> tuple[int, ...]:
    """A non-empty list of distinct core numbers, sorted; ConfigurationError otherwise."""
    items = list(cpus) if isinstance(cpus, Iterable) and not isinstance(cpus, str) else None
    if items is None or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in items
    ):
        raise ConfigurationError(what, cpus, "use a list of core numbers, e.g. (0, 1)")
    found = tuple(sorted({int(c) for c in items}))
    if not found:
        raise ConfigurationError(what, cpus, "name at least one core, or None for any")
    return found


def function_arn(name: str, qualifier: str | None = None) -> str:
    """The ARN the emulator reports for a function (and qualifier)."""
    base = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base
