"""Read what an invoke's log tail says: Lambda's REPORT figures and the function's init report.

Both functions the benchmark runs log their INIT breakdown once, as a JSON line holding an
`init` object with durations in seconds (`*_s`) and `bytes_by_tier`; the inference function
through its structured logger, the baseline with a plain print. The inference function also
logs one line per answered request with the model call's own time (`predict_ms`) and the
protocol the request was written in.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

_FIELD = re.compile(r"([A-Za-z][A-Za-z ]*?): ([0-9.]+) (ms|MB)")

# Init report keys (seconds) → phase names, in INIT order. `fetch` runs in the background
# during the imports, so the chart draws it beside the stack rather than in it.
PHASE_KEYS: dict[str, str] = {
    "download_s": "download",
    "preheat_import_s": "preheat import",
    "runtime_import_s": "import",
    "fetch_wait_s": "fetch wait",
    "load_s": "load",
    "warmup_s": "warmup",
    "fetch_s": "fetch",
}
OVERLAPPED = frozenset({"fetch"})


@dataclass
class Report:
    duration_ms: float | None = None
    init_duration_ms: float | None = None
    max_memory_mb: float | None = None
    init: dict[str, Any] = field(default_factory=dict)


def decode_tail(log_result: str | None) -> str:
    if not log_result:
        return ""
    return base64.b64decode(log_result).decode("utf-8", errors="replace")


def parse(tail: str) -> Report:
    """The last REPORT line's figures and the last init report in a log tail."""
    report = Report()
    for line in tail.splitlines():
        line = line.strip()
        if line.startswith("REPORT "):
            figures = {name.strip(): float(value) for name, value, _ in _FIELD.findall(line)}
            report.duration_ms = figures.get("Duration")
            report.init_duration_ms = figures.get("Init Duration")
            report.max_memory_mb = figures.get("Max Memory Used")
        elif line.startswith("{") and '"init"' in line:
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("init"), dict):
                report.init = doc["init"]
    return report


def init_timed_out(log: str) -> bool:
    """True when an INIT in this log ran into the limit (Lambda then runs it again)."""
    return any(
        line.startswith("INIT_REPORT ") and "Status: timeout" in line for line in log.splitlines()
    )


def phases_ms(init: dict[str, Any]) -> dict[str, float]:
    """The init report's phases in milliseconds, under the benchmark's phase names."""
    out: dict[str, float] = {}
    for key, name in PHASE_KEYS.items():
        value = init.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = round(float(value) * 1000, 3)
    return out


def fetch_cpu_ms(init: dict[str, Any]) -> float | None:
    """The fetch's CPU in the function's process, when the init report measured it."""
    value = init.get("fetch_cpu_s")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(float(value) * 1000, 3)
    return None


def bytes_by_tier(init: dict[str, Any]) -> dict[str, int]:
    raw = init.get("bytes_by_tier") or {}
    if not isinstance(raw, dict):
        return {}
    return {
        str(k): int(v) for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)
    }


@dataclass(frozen=True)
class Prediction:
    """One request's line: which invocation, in which protocol, and the model call's time."""

    request_id: str | None
    protocol: str
    predict_ms: float


def predictions(tail: str) -> list[Prediction]:
    """Every per-request predict line in a log, in order."""
    found: list[Prediction] = []
    for line in tail.splitlines():
        line = line.strip()
        if not line.startswith("{") or '"predict_ms"' not in line:
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        ms, protocol = doc.get("predict_ms"), doc.get("protocol")
        if isinstance(ms, int | float) and not isinstance(ms, bool) and isinstance(protocol, str):
            rid = doc.get("function_request_id")
            found.append(Prediction(rid if isinstance(rid, str) else None, protocol, float(ms)))
    return found
