"""SnapStart in the bench: opt-in strategies, their functions, and a section of their own."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from preheat.exceptions import ConfigurationError
from preheat.tools.bench import initlimit, strategies
from preheat.tools.bench.records import BenchResult, ColdStart, NetworkInfo, Parity, StrategyRun
from preheat.tools.bench.runner import _configs
from preheat.tools.bench.strategies import Deployment
from preheat.tools.bench.summary import SNAPSTART_CAVEAT, headline, result_dict, table
from preheat.tools.cli import bench as bench_cli
from preheat.tools.emulator import Emulator

EXACT = Parity(0.0, 0.0, 1.0, True, 4)
SNAP = ("preheat-tf-snapstart", "preheat-litert-snapstart")


@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    return tmp_path


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_cli.register(parser)
    return parser.parse_args(list(argv))


def _names(spec: str | None, snapstart: bool = False) -> list[str]:
    return [s.name for s in strategies.parse(spec, snapstart)]


# ---------------------------------------------------------------------------- choosing them


def test_snapstart_strategies_are_opt_in() -> None:
    default = _names(None)
    assert default[0] == "baseline" and not set(SNAP) & set(default)
    assert _names(None, snapstart=True) == [*default, *SNAP]
    assert set(SNAP) <= set(_names("all"))
    # Named alone they run alone (no baseline is added).
    assert _names("preheat-litert-snapstart") == ["preheat-litert-snapstart"]
    # --snapstart beside a list adds them once.
    assert _names("preheat-tf,preheat-tf-snapstart", snapstart=True) == [
        "preheat-tf", "preheat-tf-snapstart", "preheat-litert-snapstart",
    ]  # fmt: skip


def test_the_cli_flag_reaches_the_options(saved_model: Path) -> None:
    assert bench_cli.options_from(_parse("--model", str(saved_model))).snapstart is False
    opts = bench_cli.options_from(_parse("--model", str(saved_model), "--snapstart"))
    assert opts.snapstart is True
    assert all(strategies.get(n).snapstart for n in SNAP)


def test_an_unknown_strategy_names_the_snapstart_ones_too() -> None:
    with pytest.raises(ConfigurationError, match="preheat-litert-snapstart"):
        strategies.parse("preheat-snapstart")


def test_a_snapstart_function_per_cold_start_without_a_burst_one(tmp_path: Path) -> None:
    plans = {
        "preheat-tf": Deployment(tmp_path, "app.handler", {}),
        "preheat-litert-snapstart": Deployment(tmp_path, "app.handler", {}, snapstart=True),
    }
    configs, names = _configs(plans, 2, 4, 1769, initlimit.rule("lambda"))
    assert names == {
        "preheat-tf": ["preheat-tf-0", "preheat-tf-1", "preheat-tf-burst"],
        "preheat-litert-snapstart": ["preheat-litert-snapstart-0", "preheat-litert-snapstart-1"],
    }
    by_name = {f.name: f for f in configs}
    snap = by_name["preheat-litert-snapstart-0"]
    assert snap.snapstart and not by_name["preheat-tf-0"].snapstart
    # INIT at publish is not held to the on-demand 10 s.
    assert snap.init_timeout_s == initlimit.LIFTED_INIT_TIMEOUT_S
    assert by_name["preheat-tf-0"].init_timeout_s == 10.0


def test_the_emulator_keeps_no_spare_snapshots_when_asked(tmp_path: Path) -> None:
    assert Emulator([], snapshot_spares=0).snapshot_spares == 0
    with pytest.raises(ConfigurationError, match="snapshot_spares"):
        Emulator([], snapshot_spares=-1)


# ---------------------------------------------------------------------------- reporting them


def _cold(strategy: str, i: int, first: float, **kw: object) -> ColdStart:
    return ColdStart(
        strategy=strategy,
        index=i,
        environment=f"{strategy}-{i}",
        first_response_ms=first,
        warm_ms=[10.0 + i, 20.0 + i],
        max_memory_mb=300.0,
        parity=EXACT,
        **kw,  # type: ignore[arg-type]
    )


def _result() -> BenchResult:
    base = StrategyRun("baseline", "b")
    base.cold_starts = [_cold("baseline", i, 5000.0 + i, init_ms=4000.0) for i in range(3)]
    tf = StrategyRun("preheat-tf", "p")
    tf.cold_starts = [_cold("preheat-tf", i, 2500.0, init_ms=2000.0) for i in range(3)]
    snap = StrategyRun("preheat-litert-snapstart", "s", snapstart=True)
    snap.cold_starts = [
        _cold(
            "preheat-litert-snapstart",
            i,
            first,
            restore_ms=restore,
            snapshot_init_ms=init,
            publish_ms=init + 100,
        )
        for i, (first, restore, init) in enumerate(
            [(30.0, 9.0, 900.0), (50.0, 12.0, 1100.0), (40.0, 10.0, 1000.0)]
        )
    ]
    snap.cold_starts.append(ColdStart("preheat-litert-snapstart", 3, error="publishing failed"))
    missing = StrategyRun("preheat-tf-snapstart", "t", available=False, reason="needs Python 3.12")
    missing.snapstart = True
    return BenchResult(
        created="2026-01-01T00:00:00Z",
        model={"name": "m", "bytes": 123},
        network=NetworkInfo("loopback", False),
        settings={"cold_starts": 3},
        strategies=[base, tf, snap, missing],
    )


def test_a_snapstart_summary_has_restores_and_the_snapshots_init_and_no_ratios() -> None:
    doc = result_dict(_result())
    by_name = {s["name"]: s for s in doc["strategies"]}
    snap = by_name["preheat-litert-snapstart"]
    assert snap["snapstart"] is True and snap["ratios"] is None
    m = snap["summary"]
    assert (m["cold_starts"], m["errors"]) == (3, 1)
    assert m["restore_ms"] == 10.0
    assert m["first_response_ms"] == 40.0
    assert m["warm_p50_ms"] == 16.0 and m["warm_requests"] == 6
    assert m["snapshot_init_ms"] == 1000.0 and m["publish_ms"] == 1100.0
    assert "init_ms" not in m
    assert by_name["preheat-tf"]["ratios"]["first_response_speedup"] == 5001.0 / 2500.0
    assert doc["snapstart"] == {
        "strategies": ["preheat-litert-snapstart", "preheat-tf-snapstart"],
        "caveat": SNAPSTART_CAVEAT,
    }
    assert [s["name"] for s in headline(doc)] == ["baseline", "preheat-tf"]


def test_the_table_shows_snapstart_in_its_own_section_with_the_caveat() -> None:
    text = table(result_dict(_result()))
    head, _, section = text.partition("\nSnapStart: ")
    assert section, text
    # The headline table, its notes and grids name no SnapStart strategy.
    assert "snapstart" not in head
    lines = section.splitlines()
    assert f"note: {SNAPSTART_CAVEAT}" in lines
    header = next(line for line in lines if line.startswith("SnapStart "))
    assert header.split()[:2] == ["SnapStart", "restore"] and "INIT (at publish)" in header
    (row,) = [line for line in lines if line.startswith("preheat-litert-snapstart ")]
    assert row.split()[1:7] == ["10", "ms", "40", "ms", "16", "ms"]
    assert "1.00 s" in row  # the snapshot's INIT, at publish
    assert "  preheat-tf-snapstart: needs Python 3.12" in lines


def test_a_run_of_snapstart_strategies_only_prints_their_section() -> None:
    result = _result()
    result.strategies = result.strategies[2:]
    text = table(result_dict(result))
    assert "speedup" not in text and "INIT ratio" not in text
    assert "SnapStart: each cold start restores" in text and SNAPSTART_CAVEAT in text


def test_tensorflow_for_python_3_12_is_pinned_as_the_extra_pins_it() -> None:
    from importlib import metadata

    from preheat.tools.bench.environments import tensorflow_pin

    assert tensorflow_pin() == f"tensorflow-cpu=={metadata.version('tensorflow-cpu')}"
