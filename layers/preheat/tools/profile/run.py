"""One cold start in the local Lambda with `-X importtime` on, and everything its log says."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from preheat import constants as c
from preheat.exceptions import ConfigurationError
from preheat.tools.emulator import Emulator, FunctionConfig, InvokeResult

# The function's name inside the emulator; a user never needs it.
FUNCTION = "profiled"
# Makes the environment's interpreter print one line per import on stderr, which the
# emulator captures with the rest of the environment's output.
IMPORTTIME_ENV = {"PYTHONPROFILEIMPORTTIME": "1"}
# The runtime client loads the handler module with importlib.import_module, which -X importtime
# does not see: the module would print no line and its imports would look like the runtime's.
# A one-file layer imports it with the import statement instead, and hands its handler over.
ENTRY_MODULE = "preheat_profile_entry"
ENTRY_HANDLER = f"{ENTRY_MODULE}.handler"
ENV_TARGET = c.ENV_PROFILE_HANDLER
# Printed once the handler module is loaded: how many threads it started, since
# -X importtime cannot tell one thread's imports from another's.
THREADS_MARK = "preheat profile: threads started while the handler module loaded:"
_ENTRY_SOURCE = f"""\
import os
import sys
import threading

_module, _, _name = os.environ[{ENV_TARGET!r}].rpartition(".")
_module = _module.replace("/", ".")
_started = []
_start = threading.Thread.start


def _counting_start(self, *args, **kwargs):
    _started.append(self.name)
    return _start(self, *args, **kwargs)


# Counted only while the handler module loads, then put back as it was.
threading.Thread.start = _counting_start
try:
    __import__(_module)
finally:
    threading.Thread.start = _start
sys.stderr.write("{THREADS_MARK} %d\\n" % len(_started))
sys.stderr.flush()
_handler = getattr(sys.modules[_module], _name, None)
if _handler is not None:
    handler = _handler
"""
_IMPORT_MARK = b"import time:"
_INVOKED = frozenset({"success", "error", "timeout"})
_INIT_TIMEOUT_MARK = b"Status: timeout"


def parse_target(spec: str) -> tuple[Path, str]:
    """`DIR:module.handler` → (DIR, module.handler); the handler itself is checked later."""
    directory, colon, handler = spec.rpartition(":")
    if not colon or not directory or not handler:
        raise ConfigurationError(
            "handler", spec, "use DIR:module.handler, e.g. functions/inference:app.handler"
        )
    return Path(directory), handler


def check_python(python: str) -> str:
    """The interpreter's path, once it is known to run awslambdaric; else a ConfigurationError."""
    found = shutil.which(python)
    if found is None:
        raise ConfigurationError("--python", python, "use the path of a Python interpreter")
    try:
        done = subprocess.run(
            [found, "-c", "import awslambdaric"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigurationError("--python", python, f"it does not run ({exc})") from None
    if done.returncode != 0:
        raise ConfigurationError(
            "--python",
            python,
            "it cannot import awslambdaric, AWS's runtime client; "
            f"install it there with `{found} -m pip install awslambdaric`",
        )
    return found


@dataclass(frozen=True)
class Progress:
    elapsed_s: float
    modules: int  # import lines seen so far
    last_module: str


@dataclass(frozen=True)
class ColdStart:
    """What one cold start did, as the emulator's REPORT and the environment's log say."""

    outcome: str  # success, error, init_error, init_timeout, timeout, crash
    error_type: str | None
    error_message: str | None
    init_duration_ms: float | None  # None when INIT did not finish
    duration_ms: float | None  # the first invoke's Duration; None when INIT did not finish
    max_memory_used_mb: int | None
    response: bytes
    log: str  # the environment's whole output, import lines included
    wall_s: float

    @property
    def init_failed(self) -> bool:
        return self.outcome in ("init_error", "init_timeout")


class _Capture:
    """The emulator's log sink: keeps one environment's whole output and watches it."""

    def __init__(self, on_init_timeout: Callable[[str], None]) -> None:
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._partial = b""
        self._on_init_timeout = on_init_timeout
        self.modules = 0
        self.last_module = ""
        self.init_timed_out = False

    def __call__(self, env_id: str, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            at = line.find(_IMPORT_MARK)
            if at >= 0:
                self.modules += 1
                self.last_module = line.rsplit(b"|", 1)[-1].strip().decode("utf-8", "replace")
            elif (
                line.startswith(b"INIT_REPORT")
                and _INIT_TIMEOUT_MARK in line
                and not self.init_timed_out
            ):
                self.init_timed_out = True
                self._on_init_timeout(env_id)

    def text(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace")


def cold_start(
    fn: FunctionConfig,
    event: bytes = b"{}",
    *,
    workdir: Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    tick_s: float = 0.5,
) -> ColdStart:
    """Start `fn` once, cold, with `event` as its first invoke; keep all of its output.

    An INIT over `fn.init_timeout_s` ends the environment at once: Lambda would retry INIT
    inside the invoke, which measures the same imports a second time.
    """
    with tempfile.TemporaryDirectory(prefix="preheat-profile-") as tmp:
        entry = Path(tmp) / "entry"
        (entry / "python").mkdir(parents=True)
        (entry / "python" / f"{ENTRY_MODULE}.py").write_text(_ENTRY_SOURCE)
        wrapped = FunctionConfig(
            name=FUNCTION,
            code_dir=fn.code_dir,
            handler=ENTRY_HANDLER,
            env={**fn.env, **IMPORTTIME_ENV, ENV_TARGET: fn.handler},
            memory_mb=fn.memory_mb,
            timeout_s=fn.timeout_s,
            init_timeout_s=fn.init_timeout_s,
            idle_timeout_s=fn.idle_timeout_s,
            layers=(*fn.layers, entry),
            python=fn.python,
            freeze=fn.freeze,
        )
        return _run(wrapped, fn.handler, event, workdir, on_progress, tick_s)


def _run(
    fn: FunctionConfig,
    handler: str,
    event: bytes,
    workdir: Path | None,
    on_progress: Callable[[Progress], None] | None,
    tick_s: float,
) -> ColdStart:
    holder: dict[str, Emulator] = {}

    def end_environment(env_id: str) -> None:
        # Called from the log pump with the log's lock held: kill from another thread.
        emu = holder.get("emu")
        if emu is not None:
            threading.Thread(target=emu.kill_environment, args=(env_id,), daemon=True).start()

    capture = _Capture(end_environment)
    outcome: dict[str, InvokeResult | BaseException] = {}
    started = time.perf_counter()
    with Emulator([fn], workdir=workdir, log_sink=capture) as emu:
        holder["emu"] = emu

        def invoke() -> None:
            try:
                outcome["result"] = emu.invoke(FUNCTION, event)
            except BaseException as exc:
                outcome["result"] = exc

        worker = threading.Thread(target=invoke, name="profile-invoke", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(tick_s)
            if on_progress is not None and worker.is_alive():
                on_progress(
                    Progress(time.perf_counter() - started, capture.modules, capture.last_module)
                )
    wall = time.perf_counter() - started
    result = outcome.get("result")
    if isinstance(result, BaseException):
        raise result
    assert result is not None
    rec = result.record
    kind: str = rec.outcome if rec is not None else "crash"
    if capture.init_timed_out:
        kind = "init_timeout"
    error_type, message = _error(result, kind)
    if message:
        # Messages name the module that failed: the user's, not the entry module around it.
        message = message.replace(ENTRY_MODULE, handler.rpartition(".")[0])
    return ColdStart(
        outcome=kind,
        error_type=error_type,
        error_message=message,
        init_duration_ms=rec.init_duration_ms if rec is not None else None,
        # No invoke ran after a failed INIT: the record's Duration is the INIT's own time.
        duration_ms=rec.duration_ms if rec is not None and kind in _INVOKED else None,
        max_memory_used_mb=rec.max_memory_used_mb if rec is not None else None,
        response=result.body,
        log=capture.text(),
        wall_s=wall,
    )


def _error(result: InvokeResult, kind: str) -> tuple[str | None, str | None]:
    if kind == "success":
        return None, None
    if kind == "init_timeout":
        return "Sandbox.Timedout", None
    error_type = result.record.error_type if result.record is not None else None
    try:
        doc = orjson.loads(result.body)
    except orjson.JSONDecodeError:
        doc = None
    message = None
    if isinstance(doc, dict):
        message = str(doc.get("errorMessage") or "") or None
        error_type = error_type or (str(doc["errorType"]) if doc.get("errorType") else None)
    return error_type, message
