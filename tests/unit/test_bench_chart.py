"""The chart's phase stacking, and that a PNG is written for a results document."""

from __future__ import annotations

from pathlib import Path

from preheat.tools.bench.chart import draw, phase_stack
from preheat.tools.bench.summary import result_dict
from tests.unit.test_bench_summary import _result


def test_phase_stack_orders_phases_and_adds_the_remainder() -> None:
    stack = phase_stack(1000.0, {"load": 200.0, "zeta": 50.0, "import": 300.0})
    assert stack == [("import", 300.0), ("load", 200.0), ("zeta", 50.0), ("other", 450.0)]


def test_background_fetch_is_not_stacked_and_no_remainder_goes_negative() -> None:
    stack = phase_stack(1000.0, {"fetch": 800.0, "import": 900.0, "preheat import": 150.0})
    assert stack == [("preheat import", 150.0), ("import", 900.0)]


def test_draw_writes_a_png(tmp_path: Path) -> None:
    path = draw(result_dict(_result()), tmp_path / "out" / "chart.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
