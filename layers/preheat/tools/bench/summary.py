"""From raw cold starts to what people read: medians, ratios against baseline, the table.

SnapStart strategies are summarised apart (`summarize_snapstart`) and shown in a section of
their own: their cold starts are restores the emulator cannot price (it does not snapshot
memory), so they never enter the ratios, the headline table or the chart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from preheat.tools.bench import initlimit
from preheat.tools.bench.records import (
    BenchResult,
    Burst,
    ColdStart,
    Parity,
    ProtocolRun,
    StrategyRun,
    to_dict,
)
from preheat.tools.bench.stats import median, median_by_key, percentile, ratio

BASELINE = "baseline"
# Lambda stops an on-demand INIT at this limit (and retries it inside the first invoke).
INIT_LIMIT_MS = 10_000.0
# The import is compared between these two: the same code and environment, the first
# fetching from S3 while it imports, the second with the version already on disk.
FETCHING, NOT_FETCHING = "preheat-tf", "preheat-tf-disk"
# Below this many bytes fetched, CPU per 100 MB says more about fixed costs than about bytes.
MIN_PER_100MB_BYTES = 16_000_000
PHASES = ("download", "import", "fetch", "fetch wait", "load", "warmup")
SNAPSTART_CAVEAT = (
    "the emulator does not snapshot memory, so the cost of restoring a snapshot is not "
    "modelled: only the after-restore hooks and the invoke are measured"
)


def worst_parity(parities: list[Parity]) -> Parity | None:
    """The worst figures over several cold starts: one bad environment must not hide."""
    if not parities:
        return None
    tops = [p.top1_agreement for p in parities if p.top1_agreement is not None]
    return Parity(
        max_abs_error=max(p.max_abs_error for p in parities),
        max_rel_error=max(p.max_rel_error for p in parities),
        top1_agreement=min(tops) if tops else None,
        bit_identical=all(p.bit_identical for p in parities),
        samples=sum(p.samples for p in parities),
    )


def _successful(run: StrategyRun) -> tuple[list[ColdStart], dict[str, Any]]:
    """A strategy's successful cold starts, and what every summary says of them."""
    ok: list[ColdStart] = [c for c in run.cold_starts if c.error is None]
    warm = [w for c in ok for w in c.warm_ms]
    memory = [c.max_memory_mb for c in ok if c.max_memory_mb is not None]
    parity = worst_parity([c.parity for c in ok if c.parity is not None])
    return ok, {
        "cold_starts": len(ok),
        "errors": len(run.cold_starts) - len(ok),
        "first_response_ms": median(
            c.first_response_ms for c in ok if c.first_response_ms is not None
        ),
        "first_duration_ms": median(
            c.first_duration_ms for c in ok if c.first_duration_ms is not None
        ),
        "warm_p50_ms": percentile(warm, 50),
        "warm_p99_ms": percentile(warm, 99),
        "warm_requests": len(warm),
        "phases_ms": median_by_key([c.phases_ms for c in ok]),
        "max_memory_mb": max(memory) if memory else None,
        "parity": to_dict(parity) if parity is not None else None,
    }


def summarize(run: StrategyRun) -> dict[str, Any]:
    """Medians over a strategy's successful cold starts; warm percentiles pool all requests."""
    ok, shared = _successful(run)
    return {
        **shared,
        "init_ms": median(c.init_ms for c in ok if c.init_ms is not None),
        # Cold starts whose INIT passed Lambda's limit: measured past it (the lifted rule
        # lets INIT finish), or cut off there and retried in the invoke (the lambda rule).
        "init_over_limit": sum(
            1 for c in ok if c.init_retried or (c.init_ms is not None and c.init_ms > INIT_LIMIT_MS)
        ),
        "init_retried": sum(1 for c in ok if c.init_retried),
        # INITs that returned at preheat's budget, the first invoke waiting for the load.
        "init_handed_back": sum(1 for c in ok if c.init_handed_back),
        "bytes_by_tier": {
            k: round(v) for k, v in median_by_key([_floats(c.bytes_by_tier) for c in ok]).items()
        },
        "fetch_cpu_ms": median(c.fetch_cpu_ms for c in ok if c.fetch_cpu_ms is not None),
        # The fetch's CPU in the function's process per 100 MB it brought from S3; a fetch of
        # a few MB is mostly fixed costs (the manifest, the client), so none is given then.
        "fetch_cpu_s_per_100mb": median(
            c.fetch_cpu_ms / 1000 / (c.bytes_by_tier["s3"] / 1e8)
            for c in ok
            if c.fetch_cpu_ms is not None and c.bytes_by_tier.get("s3", 0) >= MIN_PER_100MB_BYTES
        ),
        "protocols": summarize_protocols(ok),
    }


def summarize_snapstart(run: StrategyRun) -> dict[str, Any]:
    """Medians over a SnapStart strategy's successful restores; its INIT is the snapshot's
    (run when the version was published), never a cold start's."""
    ok, shared = _successful(run)
    return {
        **shared,
        "restore_ms": median(c.restore_ms for c in ok if c.restore_ms is not None),
        "snapshot_init_ms": median(
            c.snapshot_init_ms for c in ok if c.snapshot_init_ms is not None
        ),
        "publish_ms": median(c.publish_ms for c in ok if c.publish_ms is not None),
    }


def headline(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The strategies of the headline table and chart: every one but the SnapStart ones."""
    return [s for s in doc["strategies"] if not s.get("snapstart")]


def summarize_protocols(cold_starts: list[ColdStart]) -> list[dict[str, Any]]:
    """Per protocol, in the order first measured: warm percentiles and the model's own time
    pooled over the cold starts whose requests in that protocol all succeeded."""
    by_protocol: dict[str, list[ProtocolRun]] = {}
    for c in cold_starts:
        for p in c.protocols:
            by_protocol.setdefault(p.protocol, []).append(p)
    out = []
    for protocol, runs in by_protocol.items():
        ok = [p for p in runs if p.error is None]
        warm = [w for p in ok for w in p.warm_ms]
        p50 = percentile(warm, 50)
        predict = median(m for p in ok for m in p.predict_ms)
        parity = worst_parity([p.parity for p in ok if p.parity is not None])
        out.append(
            {
                "protocol": protocol,
                "requests": len(warm),
                "errors": [p.error for p in runs if p.error is not None],
                "request_bytes": median(float(b) for p in ok for b in p.request_bytes),
                "warm_p50_ms": p50,
                "warm_p99_ms": percentile(warm, 99),
                "predict_p50_ms": predict,
                "predict_samples": sum(len(p.predict_ms) for p in ok),
                # What the request costs beyond the model: transport, decoding, encoding.
                "overhead_p50_ms": None if p50 is None or predict is None else p50 - predict,
                "parity": to_dict(parity) if parity is not None else None,
            }
        )
    return out


def _floats(d: Mapping[str, int]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items()}


def ratios(summary: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> dict[str, Any]:
    """How a strategy compares with baseline in the same run.

    first_response_speedup > 1 means the first answer came that many times sooner;
    init_ratio < 1 means a shorter INIT.
    """
    if baseline is None:
        return {"first_response_speedup": None, "init_ratio": None}
    return {
        "first_response_speedup": ratio(
            baseline.get("first_response_ms"), summary.get("first_response_ms")
        ),
        "init_ratio": ratio(summary.get("init_ms"), baseline.get("init_ms")),
    }


def summarize_burst(burst: Burst, baseline: Burst | None) -> dict[str, Any]:
    inits = [e.init_ms for e in burst.environments if e.init_ms is not None]
    return {
        "strategy": burst.strategy,
        "size": burst.size,
        "all_answered_ms": burst.all_answered_ms,
        "distinct_environments": burst.distinct_environments,
        "errors": sum(1 for e in burst.environments if e.error),
        "init_ms_median": median(inits),
        "init_ms_max": max(inits) if inits else None,
        "speedup_vs_baseline": (
            ratio(baseline.all_answered_ms, burst.all_answered_ms) if baseline else None
        ),
    }


def result_dict(result: BenchResult) -> dict[str, Any]:
    """The results file: raw samples, summaries and ratios, all in one document."""
    summaries = {
        s.name: summarize_snapstart(s) if s.snapstart else summarize(s)
        for s in result.strategies
        if s.available
    }
    base = summaries.get(BASELINE)
    strategies = []
    for s in result.strategies:
        entry = to_dict(s)
        if s.available:
            entry["summary"] = summaries[s.name]
            # Restores the emulator cannot price are not compared with cold INITs.
            entry["ratios"] = None if s.snapstart else ratios(summaries[s.name], base)
        strategies.append(entry)
    imports = {
        name: summaries[name]["phases_ms"].get("import")
        for name in (FETCHING, NOT_FETCHING)
        if name in summaries
    }
    base_burst = next((b for b in result.bursts if b.strategy == BASELINE), None)
    bursts = []
    for b in result.bursts:
        entry = to_dict(b)
        entry["summary"] = summarize_burst(b, base_burst)
        bursts.append(entry)
    return {
        "created": result.created,
        "model": result.model,
        "network": to_dict(result.network),
        "settings": result.settings,
        "baseline": BASELINE if base is not None else None,
        "strategies": strategies,
        "bursts": bursts,
        # > 1: the import ran that much slower while the fetch ran beside it.
        "import_under_fetch": ratio(imports.get(FETCHING), imports.get(NOT_FETCHING)),
        "snapstart": (
            {
                "strategies": [s.name for s in result.strategies if s.snapstart],
                "caveat": SNAPSTART_CAVEAT,
            }
            if any(s.snapstart for s in result.strategies)
            else None
        ),
    }


# ---------------------------------------------------------------------------- the table


def _measured(
    strategies: Iterable[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """The strategies with at least one cold start measured, and a line for each other one."""
    measured: list[Mapping[str, Any]] = []
    missing: list[str] = []
    for s in strategies:
        if not s["available"]:
            missing.append(f"  {s['name']}: {s['reason']}")
        elif s["summary"]["cold_starts"] == 0:
            errors = {c["error"] for c in s["cold_starts"] if c["error"]}
            missing.append(f"  {s['name']}: every cold start failed: {'; '.join(sorted(errors))}")
        else:
            measured.append(s)
    return measured, missing


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _mb(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} MB"


def _bytes(d: Mapping[str, int]) -> str:
    parts = [f"{k} {v / 1e6:.1f} MB" for k, v in d.items() if v]
    return ", ".join(parts) if parts else "-"


def _parity(p: Mapping[str, Any] | None) -> str:
    if p is None:
        return "-"
    if p["bit_identical"]:
        return "exact"
    top1 = "" if p["top1_agreement"] is None else f", top-1 {p['top1_agreement']:.0%}"
    return f"abs {p['max_abs_error']:.1e}, rel {p['max_rel_error']:.1e}{top1}"


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _phase_grid(doc: Mapping[str, Any]) -> list[str]:
    """INIT phases per strategy (medians); fetch overlaps the imports, fetch wait does not."""
    rows = []
    for s in headline(doc):
        if s["available"] and s["summary"]["cold_starts"]:
            phases = s["summary"]["phases_ms"]
            cpu = s["summary"].get("fetch_cpu_s_per_100mb")
            rows.append(
                [
                    s["name"],
                    *(_ms(phases.get(p)) for p in PHASES),
                    _ms(s["summary"].get("fetch_cpu_ms")),
                    "-" if cpu is None else f"{cpu:.2f} s",
                ]
            )
    header = ["INIT phases", *PHASES, "fetch CPU", "fetch CPU / 100 MB"]
    return _grid(header, rows) if rows else []


def _fine_ms(v: float | None) -> str:
    """Milliseconds with a decimal below 10 ms, where a small model's figures live."""
    if v is None or abs(v) >= 10:
        return _ms(v)
    return f"{v:.1f} ms"


def _size(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1e6:.2f} MB" if v >= 1e5 else f"{v / 1e3:.1f} kB"


def _protocol_grid(doc: Mapping[str, Any]) -> list[str]:
    """Warm requests per strategy and protocol, beside the model's own predict time."""
    rows, notes = [], []
    for s in headline(doc):
        if not (s["available"] and s["summary"]["cold_starts"]):
            continue
        protocols = s["summary"].get("protocols") or []
        if not protocols:
            if s["name"] == BASELINE:
                notes.append(f"  {BASELINE}: JSON only (its function speaks only its own form)")
            continue
        for p in protocols:
            rows.append(
                [
                    s["name"],
                    p["protocol"],
                    _size(p["request_bytes"]),
                    f"{_fine_ms(p['warm_p50_ms'])} / {_fine_ms(p['warm_p99_ms'])}",
                    _fine_ms(p["predict_p50_ms"]),
                    _fine_ms(p["overhead_p50_ms"]),
                    _parity(p["parity"]),
                ]
            )
            notes += [f"  {s['name']} {p['protocol']}: {e}" for e in p["errors"]]
    if not rows:
        return []
    header = ["strategy", "protocol", "request bytes", "warm p50 / p99", "predict p50",
              "overhead p50", "parity"]  # fmt: skip
    lines = _grid(header, rows)
    lines.append("overhead = warm p50 - predict p50 (the model call's own time, from the log)")
    if notes:
        lines += ["protocols not measured or failed:", *notes]
    return ["", *lines]


def _init_limit_lines(doc: Mapping[str, Any]) -> list[str]:
    """Which INIT rule the run followed, and per strategy how many INITs passed the limit."""
    # Results written before the rule was recorded ran lifted.
    name = (doc["settings"].get("init_limit") or {}).get("rule") or initlimit.LIFTED
    rule = initlimit.rule(name)
    measured = [s for s in headline(doc) if s["available"] and s["summary"]["cold_starts"]]

    def counts(key: str) -> str:
        return ", ".join(
            f"{s['name']} {s['summary'].get(key, 0)} of {s['summary']['cold_starts']}"
            for s in measured
        )

    limit = f"{INIT_LIMIT_MS / 1000:.0f} s"
    if rule.name == initlimit.LIFTED:
        return [
            rule.text(),
            f"INIT past Lambda's {limit} (Lambda would have cut it off and retried it in the "
            f"invoke): {counts('init_over_limit')}",
        ]
    lines = [
        rule.text(),
        f"INIT past {limit}, cut off and retried in the invoke: {counts('init_over_limit')}",
    ]
    if any(s["summary"].get("init_handed_back") for s in measured):
        lines.append(
            "INIT handed back at preheat's budget, the first invoke waiting for the load: "
            + counts("init_handed_back")
        )
    return lines


def _environment_lines(environments: Mapping[str, Any]) -> list[str]:
    """Each TensorFlow environment's versions against what pip gives its users today."""
    from preheat.tools.bench.environments import Resolution

    return [Resolution.from_dict(r).text(kind) for kind, r in sorted(environments.items())]


def _variety_line(v: Mapping[str, Any]) -> str:
    """What parity is measured on: how far the source's answers move between requests."""
    classes = v.get("top1_classes")
    spread = f"the source's outputs vary by {v['spread']:.0%} of their size across them"
    tail = f" and take {classes} top-1 classes" if classes is not None else ""
    return f"parity over {v['requests']} requests; {spread}{tail}"


def table(doc: Mapping[str, Any]) -> str:
    """The terminal table of a results document (see result_dict)."""
    header = [
        "strategy",
        "first response",
        "speedup",
        "INIT",
        "INIT ratio",
        "warm p50/p99",
        "peak RSS",
        "fetched",
        "parity",
    ]
    rows: list[list[str]] = []
    measured, missing = _measured(headline(doc))
    for s in measured:
        m, r = s["summary"], s["ratios"]
        rows.append(
            [
                s["name"],
                _ms(m["first_response_ms"]),
                _x(r["first_response_speedup"]),
                _ms(m["init_ms"]),
                _x(r["init_ratio"]),
                f"{_ms(m['warm_p50_ms'])} / {_ms(m['warm_p99_ms'])}",
                _mb(m["max_memory_mb"]),
                _bytes(m["bytes_by_tier"]),
                _parity(m["parity"]),
            ]
        )
    net = doc["network"]
    if net["shaped"]:
        measured = net.get("measured_mbit")
        where = f"network: S3 behind a {net['rate_mbit']:.0f} Mbit/s cap" + (
            f" (measured {measured:.0f} Mbit/s)" if measured else ""
        )
    else:
        where = "network: loopback, unshaped" + (f" ({net['note']})" if net.get("note") else "")
    settings = doc["settings"]
    resources = settings.get("resources") or {}
    lines = [f"cold starts per strategy: {settings.get('cold_starts')}, medians; {where}"]
    if resources.get("model"):
        s3_cores = ",".join(map(str, resources.get("s3_cores", [])))
        lines.append(f"resources: {resources['model']}; S3 on cores {s3_cores}")
    lines += _environment_lines(settings.get("environments") or {})
    if not headline(doc):
        # Only SnapStart strategies were chosen: their section is the whole report.
        return "\n".join([*lines, *snapstart_section(doc)[1:]])
    lines += _grid(header, rows)
    if missing:
        lines += ["not measured:", *missing]
    if doc["model"].get("constant_outputs"):
        lines.append(
            "note: the model answers every input with the same constant outputs (random "
            "weights), so parity here cannot tell strategies apart"
        )
    elif doc["model"].get("output_variety"):
        lines.append(_variety_line(doc["model"]["output_variety"]))
    lines += ["", *_phase_grid(doc)]
    under = doc.get("import_under_fetch")
    if under is not None:
        lines.append(
            f"import while fetching: {FETCHING}'s import / {NOT_FETCHING}'s = {under:.2f}x "
            "(1.00x: the fetch does not slow the import at all)"
        )
    lines += _init_limit_lines(doc)
    if doc["bursts"]:
        bheader = ["burst", "environments", "all answered", "speedup", "INIT median / max"]
        brows = []
        for b in doc["bursts"]:
            m = b["summary"]
            brows.append(
                [
                    b["strategy"],
                    f"{m['distinct_environments']} of {m['size']}",
                    _ms(m["all_answered_ms"]),
                    _x(m["speedup_vs_baseline"]),
                    f"{_ms(m['init_ms_median'])} / {_ms(m['init_ms_max'])}",
                ]
            )
        lines += ["", *_grid(bheader, brows)]
    lines.append("speedup: baseline's first response / this one's (higher is better); ")
    lines[-1] += "INIT ratio: this INIT / baseline's (lower is better)."
    lines += _protocol_grid(doc)
    lines += snapstart_section(doc)
    return "\n".join(lines)


def snapstart_section(doc: Mapping[str, Any]) -> list[str]:
    """The SnapStart strategies' own section: restores, apart from the headline ratios."""
    runs = [s for s in doc["strategies"] if s.get("snapstart")]
    if not runs:
        return []
    rows = []
    measured, missing = _measured(runs)
    for s in measured:
        m = s["summary"]
        rows.append(
            [
                s["name"],
                _fine_ms(m["restore_ms"]),
                _ms(m["first_response_ms"]),
                f"{_fine_ms(m['warm_p50_ms'])} / {_fine_ms(m['warm_p99_ms'])}",
                _ms(m["snapshot_init_ms"]),
                _mb(m["max_memory_mb"]),
                _parity(m["parity"]),
            ]
        )
    header = ["SnapStart", "restore", "first response", "warm p50/p99", "INIT (at publish)",
              "peak RSS", "parity"]  # fmt: skip
    lines = [
        "",
        "SnapStart: each cold start restores a published version's snapshot (medians; "
        "never in the ratios, the headline table or the chart)",
        f"note: {SNAPSTART_CAVEAT}",
    ]
    if rows:
        lines += _grid(header, rows)
        lines.append("INIT (at publish): the snapshot's INIT, run once when the version was "
                     "published, not by any cold start")  # fmt: skip
    if missing:
        lines += ["not measured:", *missing]
    return lines
