"""The results chart: INIT stacked by phase per strategy, beside first-response latency."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Phases in the order they happen in INIT; others are drawn after them, then the remainder.
PHASE_ORDER = ("download", "preheat import", "import", "fetch wait", "load", "warmup")
# Phases that run in the background beside the others: drawn as a thin bar, not stacked.
OVERLAPPED = ("fetch",)
OTHER = "other"
# One color per phase in every chart, so that charts of different runs read alike.
COLORS = {
    "download": "tab:blue",
    "preheat import": "tab:purple",
    "import": "tab:orange",
    "fetch wait": "tab:brown",
    "load": "tab:green",
    "warmup": "tab:pink",
    OTHER: "lightgray",
}


def phase_stack(init_ms: float | None, phases_ms: Mapping[str, float]) -> list[tuple[str, float]]:
    """INIT split into its phases in a stable order, plus what the phases do not account for.

    A strategy that overlaps fetch with import reports phases summing to more than INIT;
    then the stack shows each phase but no negative remainder.
    """
    ordered = [p for p in PHASE_ORDER if p in phases_ms]
    ordered += sorted(
        p for p in phases_ms if p not in PHASE_ORDER and p not in OVERLAPPED and p != OTHER
    )
    stack = [(p, float(phases_ms[p])) for p in ordered]
    if init_ms is not None:
        rest = init_ms - sum(v for _, v in stack)
        if rest > 0:
            stack.append((OTHER, rest))
    return stack


def draw(doc: Mapping[str, Any], path: Path) -> Path:
    """Write the PNG for a results document (see summary.result_dict) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from preheat.tools.bench.summary import headline

    # SnapStart restores are not priced by the emulator: they stay in the table's own section.
    runs: Sequence[Mapping[str, Any]] = [
        s for s in headline(doc) if s["available"] and s["summary"]["cold_starts"]
    ]
    names = [s["name"] for s in runs]
    fig, (ax_init, ax_first) = plt.subplots(
        1, 2, figsize=(12, 1.8 + 0.6 * max(len(names), 1)), sharey=True
    )
    colors: dict[str, Any] = {}
    palette = plt.get_cmap("tab10")
    for row, s in enumerate(runs):
        m = s["summary"]
        left = 0.0
        for phase, ms in phase_stack(m["init_ms"], m["phases_ms"]):
            # One legend entry per phase, however many strategies report it.
            label = None if phase in colors else phase
            color = colors.setdefault(phase, COLORS.get(phase) or palette(len(colors) % 10))
            ax_init.barh(row, ms / 1000, left=left, color=color, label=label)
            left += ms / 1000
        for phase in OVERLAPPED:
            if phase in m["phases_ms"]:
                # Starts once preheat is imported: that import is what launches the fetch.
                begin = m["phases_ms"].get("preheat import", 0.0) / 1000
                ax_init.barh(
                    row + 0.32, m["phases_ms"][phase] / 1000, left=begin, height=0.14,
                    color="black", label=None if f"{phase} (background)" in colors else
                    f"{phase} (background)",
                )  # fmt: skip
                colors.setdefault(f"{phase} (background)", "black")
        init = m["init_ms"]
        if init is not None:
            ax_init.plot([init / 1000], [row], marker="|", color="black", markersize=18)
    ax_init.set_yticks(range(len(names)), names)
    ax_init.invert_yaxis()
    ax_init.set_xlabel("seconds")
    ax_init.set_title("INIT by phase (median; | marks Init Duration)")

    firsts = [(s["summary"]["first_response_ms"] or 0) / 1000 for s in runs]
    bars = ax_first.barh(range(len(names)), firsts, color="tab:gray")
    for bar, s in zip(bars, runs, strict=True):
        speedup = s["ratios"]["first_response_speedup"]
        text = f"{bar.get_width():.2f} s" + (f"  ({speedup:.1f}x)" if speedup else "")
        ax_first.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            " " + text,
            va="center",
            fontsize="small",
        )
    ax_first.set_xlabel("seconds")
    ax_first.set_title("first response, INIT included (median)")
    if firsts:
        ax_first.set_xlim(0, max(firsts) * 1.35 or 1)
    net = doc["network"]
    shaped = f"S3 capped at {net['rate_mbit']:.0f} Mbit/s" if net["shaped"] else "loopback S3"
    fig.suptitle(f"{doc['model'].get('name', 'model')}: cold starts, {shaped}")
    if colors:
        fig.legend(loc="lower center", ncol=min(len(colors), 8), fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.08 if colors else 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
