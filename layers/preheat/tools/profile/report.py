"""A cold start's profile as data (phases, rankings, tree) and as text for people."""

from __future__ import annotations

import re
from typing import Any

from preheat.tools.bench import logs
from preheat.tools.profile import importtime as it
from preheat.tools.profile.run import THREADS_MARK, ColdStart

FORMAT = "preheat.tools.profile/1"
_INIT_REPORT = re.compile(r"^INIT_REPORT Init Duration: ([0-9.]+) ms", re.MULTILINE)
_THREADS = re.compile(re.escape(THREADS_MARK) + r" (\d+)")


def build(cold: ColdStart, *, handler: str, code_dir: str, top: int) -> dict[str, Any]:
    """The profile document: what `profile.json` holds and what the text and chart draw."""
    tree = it.parse(cold.log.splitlines())
    module = handler.rpartition(".")[0]
    handler_node = tree.find(module)
    init_roots, later_roots = _split_at(tree.roots, handler_node)
    # The handler module's own top-level code (a model loaded at import, say) is INIT work
    # but not importing: it is reported beside the imports, not in them.
    handler_self_us = handler_node.self_us if handler_node else 0
    init_imports_us = sum(r.cumulative_us for r in init_roots) - handler_self_us
    init_ms = cold.init_duration_ms
    if init_ms is None:
        # INIT failed or timed out: the REPORT has no Init Duration, the INIT_REPORT has.
        found = _INIT_REPORT.findall(cold.log)
        init_ms = float(found[0]) if found else None
    report = logs.parse(cold.log)
    ranked = [n for n in tree.nodes() if n is not handler_node]
    phases: dict[str, Any] = {
        "init_ms": init_ms,
        "duration_ms": cold.duration_ms,
        "max_memory_used_mb": cold.max_memory_used_mb,
        "imports_in_init_ms": init_imports_us / 1000,
        "import_share_of_init": (round(init_imports_us / 1000 / init_ms, 4) if init_ms else None),
        "handler_module": {
            "name": module,
            "imported": handler_node is not None,
            "cumulative_ms": handler_node.cumulative_us / 1000 if handler_node else None,
            # The module's own top-level code: what it runs besides importing.
            "self_ms": handler_node.self_us / 1000 if handler_node else None,
        },
        "runtime_start_imports_ms": sum(
            r.cumulative_us for r in init_roots if r is not handler_node
        )
        / 1000,
        "imports_after_init_ms": sum(r.cumulative_us for r in later_roots) / 1000,
        "function_init_report_ms": logs.phases_ms(report.init),
    }
    threads = _THREADS.search(cold.log)
    return {
        "format": FORMAT,
        "handler": handler,
        "code_dir": code_dir,
        "outcome": cold.outcome,
        "error_type": cold.error_type,
        "error_message": cold.error_message,
        "phases": phases,
        "modules": tree.lines,
        "threads": int(threads[1]) if threads else None,
        "rule": (
            f"top: by cumulative time; an import inside a listed one is listed only from "
            f"{it.LARGE_SHARE:.0%} of all import time and below {it.RESTATED_SHARE:.0%} of "
            "that listed import; the handler module itself is in phases"
        ),
        "top": [_with_share(e, init_ms) for e in it.top_cumulative(ranked, top, tree.total_us)],
        "top_self": [_with_share(e, init_ms) for e in it.top_self(tree.nodes(), top)],
        "tree": {
            "total_us": tree.total_us,
            "init_roots": len(init_roots),
            "roots": [r.to_dict() for r in tree.roots],
        },
    }


def _split_at(
    roots: list[it.ImportNode], handler_node: it.ImportNode | None
) -> tuple[list[it.ImportNode], list[it.ImportNode]]:
    """Roots up to the one holding the handler module ran in INIT; the rest came after.

    The handler module is the last thing the runtime client imports before it asks for
    the first event, so its line's position splits INIT from the invoke without relying
    on timestamps, which `-X importtime` does not print.
    """
    if handler_node is None:
        return roots, []
    top = handler_node
    while top.parent is not None:
        top = top.parent
    cut = next(i for i, r in enumerate(roots) if r is top) + 1
    return roots[:cut], roots[cut:]


def _with_share(entry: it.Entry, init_ms: float | None) -> dict[str, Any]:
    doc = entry.to_dict()
    doc["share_of_init"] = round(entry.cumulative_us / 1000 / init_ms, 4) if init_ms else None
    return doc


def _s(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f} s" if ms >= 100 else f"{ms:.1f} ms"


def _line(entry: dict[str, Any], key: str) -> str:
    share = entry["share_of_init"]
    pct = f"{share:4.0%}" if share is not None else "    "
    chain = it.format_chain(entry["name"], entry["chain"])
    return f"  {_s(entry[key] / 1000):>9}  {pct}  {chain}"


def render(doc: dict[str, Any], top: int) -> str:
    """The profile as text: phases first, then where the import time went."""
    p = doc["phases"]
    init_ms = p["init_ms"]
    out = [f"{doc['handler']} in {doc['code_dir']}: one cold start, {doc['outcome']}"]
    share = p["import_share_of_init"]
    share_text = f" ({share:.0%} of INIT)" if share is not None else ""
    out.append(f"  INIT         {_s(init_ms):>9}   Init Duration in the REPORT")
    out.append(
        f"    importing  {_s(p['imports_in_init_ms']):>9}{share_text}, {doc['modules']} modules"
    )
    hm = p["handler_module"]
    if hm["imported"]:
        out.append(
            f"      {hm['name']:<8} {_s(hm['cumulative_ms']):>9}   the handler module, of which "
            f"{_s(hm['self_ms'])} its own top-level code"
        )
    else:
        out.append(f"      {hm['name']:<8}        -   the handler module did not finish importing")
    out.append(
        f"      runtime  {_s(p['runtime_start_imports_ms']):>9}   "
        "Python start-up and the runtime client"
    )
    if p["function_init_report_ms"]:
        out.append("    the function's own init report:")
    for phase, ms in p["function_init_report_ms"].items():
        out.append(f"      {phase:<15}{_s(ms):>9}")
    if doc["threads"]:
        out.append(
            f"  note: the handler module started {doc['threads']} thread(s) while it loaded; "
            "-X importtime nests a thread's imports under whatever the main thread was "
            "importing, so chains through those imports mix threads"
        )
    if p["imports_after_init_ms"]:
        out.append(f"  imports after INIT {_s(p['imports_after_init_ms'])} (first invoke, threads)")
    if p["duration_ms"] is not None:
        out.append(f"  first invoke {_s(p['duration_ms']):>9}   Duration in the REPORT")
    if p["max_memory_used_mb"]:
        out.append(f"  memory       {p['max_memory_used_mb']:>6} MB   Max Memory Used")
    out.append("")
    out.append(
        f"Top {top} imports by cumulative time (time, share of INIT, chain that pulled it in):"
    )
    out.extend(_line(e, "cumulative_us") for e in doc["top"])
    out.append(
        f"  (an import inside a listed one is listed only from {it.LARGE_SHARE:.0%} of all "
        f"import time and below {it.RESTATED_SHARE:.0%} of the listed one)"
    )
    out.append("")
    out.append(f"Top {top} imports by self time (the module's own code, children excluded):")
    out.extend(_line(e, "self_us") for e in doc["top_self"])
    return "\n".join(out)
