"""Cold-start the inference function in a fresh Python process, as Lambda's INIT does.

The process imports `functions/inference/app.py` (INIT), calls `handler` once per event
and reports what came back on one JSON line. The demo and the INIT benchmark use it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preheat.exceptions import ToolProcessError

RESULT_PREFIX = "PREHEAT-COLDSTART "

# Runs in the fresh process. The context carries what Lambda's own context object offers.
_DRIVER = r"""
import json, sys, time
start = time.perf_counter()
sys.path.insert(0, sys.argv[1])

class Context:
    function_name = "inference"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:inference"
    memory_limit_in_mb = 1024
    aws_request_id = "local-request"
    log_group_name = "/aws/lambda/inference"
    log_stream_name = "local"
    def get_remaining_time_in_millis(self):
        return 30_000

with open(sys.argv[2]) as f:
    events = json.load(f)
out = {}
try:
    import app
except Exception as exc:
    out["init_error"] = {"type": type(exc).__name__, "message": str(exc)}
else:
    out["init_wall_s"] = time.perf_counter() - start
    out["init_report"] = app.INIT_REPORT
    out["results"] = []
    for event in events:
        t = time.perf_counter()
        out["results"].append(app.handler(event, Context()))
        out.setdefault("latencies_s", []).append(time.perf_counter() - t)
print(sys.argv[3] + json.dumps(out), flush=True)
"""


def function_dir() -> Path:
    """functions/inference as this preheat carries it (a wheel's copy or the checkout's)."""
    # Imported here: this module still ships in the runtime layer, and preheat.tools.assets,
    # a tool's concern, does not.
    from preheat.tools import assets

    return assets.function_dir("inference")


@dataclass(frozen=True)
class ColdStart:
    """One fresh process: its exit code, the parsed report and everything it printed."""

    returncode: int
    output: Mapping[str, Any]
    stdout: str
    stderr: str
    wall_s: float

    @property
    def init_error(self) -> Mapping[str, str] | None:
        err = self.output.get("init_error")
        return err if isinstance(err, Mapping) else None

    @property
    def init_report(self) -> Mapping[str, Any]:
        report = self.output.get("init_report")
        return report if isinstance(report, Mapping) else {}

    @property
    def init_wall_s(self) -> float | None:
        """Seconds from the fresh interpreter's first line to the end of INIT."""
        value = self.output.get("init_wall_s")
        return float(value) if isinstance(value, int | float) else None

    @property
    def results(self) -> list[Any]:
        results = self.output.get("results")
        return list(results) if isinstance(results, list) else []

    def log_lines(self) -> list[dict[str, Any]]:
        """The structured (JSON) lines the function wrote to stdout."""
        lines: list[dict[str, Any]] = []
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                try:
                    decoded = json.loads(line)
                except ValueError:
                    continue
                if isinstance(decoded, dict):
                    lines.append(decoded)
        return lines


def run(
    events: Sequence[Any],
    env: Mapping[str, str],
    *,
    directory: Path | None = None,
    python: str = sys.executable,
    timeout_s: float = 300.0,
) -> ColdStart:
    """Start a fresh interpreter with `env`, run INIT and then each event; never raises for
    what the function does (an INIT failure is in `init_error`), only if it printed nothing.
    """
    target = directory or function_dir()
    with tempfile.TemporaryDirectory(prefix="preheat-coldstart-") as tmp:
        events_file = Path(tmp) / "events.json"
        events_file.write_text(json.dumps(list(events)))
        start = time.perf_counter()
        # subprocess.run kills the child if we are interrupted: no process is left behind.
        proc = subprocess.run(
            [python, "-c", _DRIVER, str(target), str(events_file), RESULT_PREFIX],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        wall = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise ToolProcessError(
            "the inference function's process",
            f"it ended before reporting: {tail[0]}",
            proc.returncode,
        )
    output = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return ColdStart(proc.returncode, output, proc.stdout, proc.stderr, wall)
