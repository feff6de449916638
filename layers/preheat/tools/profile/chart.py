"""The import tree as an icicle chart: root on top, one row per depth, width ∝ cumulative time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Deeper rows are cut: past this the bars are too thin to read, and the JSON has them all.
MAX_ROWS = 28
WIDTH_IN = 16.0
ROW_IN = 0.3
DPI = 100
# Average glyph width at the label font size, in pixels at DPI; decides which labels fit.
_CHAR_PX = 5.6
_FONT = 7.0
_MIN_PX = 0.6  # narrower bars (and everything under them) are not drawn
_PALE = "#d9d9d9"
_CHAIN = "#7f7f7f"


@dataclass
class _Bar:
    row: int
    left: float
    width: float
    name: str
    color: str
    alpha: float


def _path_key(name: str, chain: Sequence[str]) -> tuple[str, ...]:
    return (*reversed(chain), name)


def layout(
    roots: Sequence[Mapping[str, Any]],
    top: Sequence[Mapping[str, Any]],
    colors: Sequence[str],
    min_width_us: float,
) -> list[_Bar]:
    """Bars for every import wide enough to see, coloured by the top entry they belong to."""
    # One colour per entry, never reused: past the palette, entries are not highlighted.
    highlight = {_path_key(e["name"], e["chain"]): c for e, c in zip(top, colors, strict=False)}
    on_chain = {key[:k] for key in highlight for k in range(1, len(key))}
    bars: list[_Bar] = []

    def visit(node: Mapping[str, Any], path: tuple[str, ...], row: int, left: float,
              inherited: str | None, scale: float = 1.0) -> None:  # fmt: skip
        width = float(node["cumulative_us"]) * scale
        # The first two rows are drawn whole, however thin, so that no import time vanishes.
        if (width < min_width_us and row > 1) or row >= MAX_ROWS:
            return
        own = highlight.get(path)
        if own is not None:
            color, alpha = own, 1.0
        elif inherited is not None:
            color, alpha = inherited, 0.35
        elif path in on_chain:
            color, alpha = _CHAIN, 0.9
        else:
            color, alpha = _PALE, 1.0
        bars.append(_Bar(row, left, width, node["name"], color, alpha))
        children = node.get("children", ())
        # Imports made by other threads can make the children outlast their parent (their
        # times are wall times); squeeze them into the parent rather than over a neighbour.
        inside = sum(float(c["cumulative_us"]) for c in children)
        scale = min(1.0, width / inside) if inside else 1.0
        x = left
        for child in children:
            visit(child, (*path, child["name"]), row + 1, x, own or inherited, scale)
            x += float(child["cumulative_us"]) * scale

    x = 0.0
    for root in roots:
        visit(root, (root["name"],), 0, x, None)
        x += float(root["cumulative_us"])
    return bars


def _label(name: str, width_px: float, seconds: float) -> str:
    room = int(width_px / _CHAR_PX) - 1
    short = name.rsplit(".", 1)[-1]
    for text in (f"{name} {seconds:.2f}s", name, f"{short} {seconds:.2f}s", short):
        if len(text) <= room:
            return text
    return ""


def draw(doc: Mapping[str, Any], path: Path) -> Path:
    """Write the icicle PNG for a profile document (see report.build) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    tree = doc["tree"]
    total = float(tree["total_us"]) or 1.0
    roots: Sequence[Mapping[str, Any]] = tree["roots"]
    top: Sequence[Mapping[str, Any]] = doc["top"]
    # tab10 without its grey, which marks the chains.
    palette = [c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i != 7]  # type: ignore[attr-defined]
    palette = [matplotlib.colors.to_hex(c) for c in palette]
    plot_px = WIDTH_IN * DPI * 0.96
    bars = layout(roots, top, palette, min_width_us=total * _MIN_PX / plot_px)
    rows = max((b.row for b in bars), default=0) + 1
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 1.9 + ROW_IN * rows), dpi=DPI)
    ax.barh(
        [b.row for b in bars],
        [b.width / 1e6 for b in bars],
        left=[b.left / 1e6 for b in bars],
        height=0.92,
        color=[b.color for b in bars],
        alpha=None,
        edgecolor="white",
        linewidth=0.3,
    )
    for patch, bar in zip(ax.patches, bars, strict=True):
        patch.set_alpha(bar.alpha)
    for bar in bars:
        text = _label(bar.name, bar.width / total * plot_px, bar.width / 1e6)
        if text:
            dark = bar.alpha >= 0.9 and bar.color not in (_PALE,)
            ax.text(
                (bar.left + bar.width / 2) / 1e6,
                bar.row,
                text,
                ha="center",
                va="center",
                fontsize=_FONT,
                color="white" if dark else "black",
                clip_on=True,
            )
    init_roots = int(tree.get("init_roots", len(roots)))
    if 0 < init_roots < len(roots):
        boundary = sum(float(r["cumulative_us"]) for r in roots[:init_roots]) / 1e6
        ax.axvline(boundary, color="black", linestyle="--", linewidth=1)
        ax.text(boundary, -0.9, " after INIT →", fontsize=_FONT, va="bottom")
    ax.set_xlim(0, total / 1e6)
    ax.set_ylim(rows - 0.5, -1.0)
    ax.set_yticks([])
    ax.set_ylabel("import depth (top: imported by the runtime)")
    ax.set_xlabel("seconds of import time (cumulative; a module's children sit under it)")
    p = doc["phases"]
    init = f"INIT {p['init_ms'] / 1000:.2f} s" if p["init_ms"] else "INIT did not finish"
    share = p["import_share_of_init"]
    share_text = f", {share:.0%} of it importing" if share is not None else ""
    ax.set_title(
        f"{doc['handler']}: {init}{share_text}, {doc['modules']} modules ({doc['outcome']})",
        fontsize=11,
    )
    legend = [
        Patch(
            color=palette[i % len(palette)], label=f"{e['name']} {e['cumulative_us'] / 1e6:.2f} s"
        )
        for i, e in enumerate(top[: len(palette)])
    ]
    # The legend sits below the axes, in a band of fixed height whatever the row count.
    band = 0.75 / fig.get_figheight() if legend else 0.0
    if legend:
        fig.legend(
            handles=legend,
            loc="lower center",
            ncol=min(len(legend), 5),
            fontsize=8,
            frameon=False,
            title="most costly imports (lighter: what they imported; grey: the chain to them)",
            title_fontsize=8,
        )
    fig.tight_layout(rect=(0, band, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
