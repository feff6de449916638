"""Bad benchmark options: one-line errors before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from preheat.exceptions import ConfigurationError
from preheat.tools.bench import strategies
from preheat.tools.bench.runner import Options
from preheat.tools.cli import main


@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"cold_starts": 0}, "--cold-starts"),
        ({"warm_requests": -1}, "--warm-requests"),
        ({"burst": 1}, "--burst"),
        ({"bandwidth_mbit": 0}, "--bandwidth-mbit"),
        ({"network": "wifi"}, "--network"),
        ({"samples": 0}, "--samples"),
    ],
)
def test_options_name_the_flag_and_the_limit(
    saved_model: Path, changes: dict[str, object], flag: str
) -> None:
    with pytest.raises(ConfigurationError, match=flag):
        Options(model=saved_model, **changes)  # type: ignore[arg-type]


def test_model_must_be_a_saved_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SavedModel"):
        Options(model=tmp_path)


def test_cli_prints_one_line_and_exits_2(
    saved_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["bench", "--model", str(saved_model), "--cold-starts", "0", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "--cold-starts" in err[0] and "1 to 50" in err[0]


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="preheat-tf-disk"):
        strategies.parse("baseline,warp-drive")


def test_strategies_keep_baseline_first_and_drop_duplicates() -> None:
    chosen = strategies.parse("preheat-tf, baseline,preheat-tf")
    assert [s.name for s in chosen] == ["baseline", "preheat-tf"]
    assert [s.name for s in strategies.parse(None)][:3] == [
        "baseline", "preheat-tf", "preheat-tf-disk",
    ]  # fmt: skip


def test_a_strategy_with_a_missing_part_says_what_it_needs() -> None:
    assert strategies._missing("preheat.not_built_yet", "preheat frobnicate") == (
        "needs preheat frobnicate (preheat.not_built_yet is not installed in this preheat)"
    )
    assert strategies._missing("preheat.tools.bench", "the bench") is None
