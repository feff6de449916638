"""Summaries, ratios against baseline and the terminal table, from hand-made records."""

from __future__ import annotations

import orjson

from preheat.tools.bench.records import (
    BenchResult,
    Burst,
    BurstEnvironment,
    ColdStart,
    NetworkInfo,
    Parity,
    StrategyRun,
)
from preheat.tools.bench.summary import result_dict, summarize, table, worst_parity

EXACT = Parity(0.0, 0.0, 1.0, True, 4)


def _cold(strategy: str, i: int, init: float, first: float, **kw: object) -> ColdStart:
    return ColdStart(
        strategy=strategy,
        index=i,
        environment=f"{strategy}-{i}",
        init_ms=init,
        first_response_ms=first,
        phases_ms={"import": init / 2, "load": init / 4},
        warm_ms=[10.0 + i, 20.0 + i],
        max_memory_mb=500.0 + i,
        bytes_by_tier={"s3": 1000},
        parity=EXACT,
        **kw,  # type: ignore[arg-type]
    )


def _result() -> BenchResult:
    base = StrategyRun("baseline", "b")
    base.cold_starts = [
        _cold("baseline", i, init, init + 500) for i, init in enumerate([4000, 6000, 5000])
    ]
    fast = StrategyRun("preheat-tf", "p")
    fast.cold_starts = [
        _cold("preheat-tf", i, init, init + 100) for i, init in enumerate([2000, 2400, 2200])
    ]
    fast.cold_starts.append(ColdStart("preheat-tf", 3, error="InitError: boom"))
    missing = StrategyRun("preheat-litert-fp16", "l", available=False, reason="needs preheat slim")
    bursts = [
        Burst(
            "baseline",
            2,
            9000.0,
            [BurstEnvironment("e1", 5000.0, 8000.0), BurstEnvironment("e2", 6000.0, 9000.0)],
        ),
        Burst(
            "preheat-tf",
            2,
            3000.0,
            [BurstEnvironment("e3", 2000.0, 2500.0), BurstEnvironment("e4", 2200.0, 3000.0)],
        ),
    ]
    return BenchResult(
        created="2026-01-01T00:00:00Z",
        model={"name": "m", "bytes": 123},
        network=NetworkInfo("lambda", True, 600.0, 577.0),
        settings={"cold_starts": 3},
        strategies=[base, fast, missing],
        bursts=bursts,
    )


def test_summary_takes_medians_of_successful_cold_starts_only() -> None:
    run = _result().strategies[1]
    s = summarize(run)
    assert s["cold_starts"] == 3 and s["errors"] == 1
    assert s["init_ms"] == 2200
    assert s["first_response_ms"] == 2300
    assert s["phases_ms"] == {"import": 1100, "load": 550}
    assert s["warm_requests"] == 6
    assert s["warm_p50_ms"] == 16.0
    assert s["max_memory_mb"] == 502.0
    assert s["bytes_by_tier"] == {"s3": 1000}


def test_ratios_compare_with_baseline_in_the_same_run() -> None:
    doc = result_dict(_result())
    by_name = {s["name"]: s for s in doc["strategies"]}
    assert by_name["baseline"]["ratios"]["first_response_speedup"] == 1.0
    # baseline median first response 5500 ms, preheat-tf 2300 ms.
    assert by_name["preheat-tf"]["ratios"]["first_response_speedup"] == 5500 / 2300
    assert by_name["preheat-tf"]["ratios"]["init_ratio"] == 2200 / 5000
    assert "summary" not in by_name["preheat-litert-fp16"]
    burst = {b["strategy"]: b["summary"] for b in doc["bursts"]}
    assert burst["preheat-tf"]["speedup_vs_baseline"] == 3.0
    assert burst["preheat-tf"]["distinct_environments"] == 2
    assert burst["baseline"]["init_ms_max"] == 6000.0


def test_result_document_is_json_and_keeps_raw_samples() -> None:
    doc = orjson.loads(orjson.dumps(result_dict(_result())))
    first = doc["strategies"][0]["cold_starts"][0]
    assert set(first) >= {"init_ms", "phases_ms", "first_response_ms", "warm_ms", "max_memory_mb",
                          "bytes_by_tier", "parity"}  # fmt: skip
    assert doc["network"]["measured_mbit"] == 577.0


def test_without_baseline_ratios_are_absent_not_invented() -> None:
    result = _result()
    result.strategies = result.strategies[1:]
    result.bursts = result.bursts[1:]
    doc = result_dict(result)
    assert doc["baseline"] is None
    assert doc["strategies"][0]["ratios"] == {"first_response_speedup": None, "init_ratio": None}
    assert doc["bursts"][0]["summary"]["speedup_vs_baseline"] is None


def test_table_shows_ratios_missing_strategies_and_bursts() -> None:
    text = table(result_dict(_result()))
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("preheat-tf "))
    assert f"{5500 / 2300:.2f}x" in row and "2.30 s" in row and "exact" in row
    assert any("preheat-litert-fp16: needs preheat slim" in line for line in lines)
    assert any(
        line.startswith("preheat-tf") and "3.00x" in line and "2 of 2" in line for line in lines
    )
    assert "600 Mbit/s cap (measured 577 Mbit/s)" in text


def test_table_says_when_the_network_was_not_shaped_and_why() -> None:
    result = _result()
    result.network = NetworkInfo("lambda", False, 600.0, None, "not root")
    assert "loopback, unshaped (not root)" in table(result_dict(result))


def test_worst_parity_lets_no_bad_environment_hide() -> None:
    worse = Parity(1e-3, 2e-2, 0.75, False, 4)
    p = worst_parity([EXACT, worse])
    assert p is not None
    assert (p.max_abs_error, p.max_rel_error, p.top1_agreement, p.bit_identical, p.samples) == (
        1e-3, 2e-2, 0.75, False, 8,
    )  # fmt: skip
    assert worst_parity([]) is None


def test_table_warns_when_the_model_answers_a_constant() -> None:
    result = _result()
    result.model["constant_outputs"] = True
    assert "cannot tell strategies apart" in table(result_dict(result))
    result.model["constant_outputs"] = False
    assert "cannot tell" not in table(result_dict(result))
    result.model["output_variety"] = {"requests": 8, "spread": 0.27, "top1_classes": 3}
    assert (
        "parity over 8 requests; the source's outputs vary by 27% of their size across "
        "them and take 3 top-1 classes" in table(result_dict(result))
    )


def test_the_import_under_fetch_and_inits_past_the_limit_are_reported() -> None:
    fetching = StrategyRun("preheat-tf", "p")
    fetching.cold_starts = [
        _cold("preheat-tf", i, init, init, fetch_cpu_ms=cpu)
        for i, (init, cpu) in enumerate([(2400, 5.0), (2600, 7.0)])
    ]
    on_disk = StrategyRun("preheat-tf-disk", "d")
    on_disk.cold_starts = [_cold("preheat-tf-disk", i, 2000, 2000) for i in range(2)]
    slow = StrategyRun("baseline", "b")
    slow.cold_starts = [
        _cold("baseline", i, init, init) for i, init in enumerate([9000, 11000, 12000])
    ]
    result = BenchResult(
        created="t",
        model={"name": "m"},
        network=NetworkInfo("loopback", False),
        settings={"cold_starts": 3},
        strategies=[slow, fetching, on_disk],
        bursts=[],
    )
    doc = result_dict(result)
    # Imports are half of INIT in _cold: 1250 ms while fetching against 1000 ms on disk.
    assert doc["import_under_fetch"] == 1.25
    by_name = {s["name"]: s["summary"] for s in doc["strategies"]}
    assert by_name["baseline"]["init_over_limit"] == 2
    assert by_name["preheat-tf"]["init_over_limit"] == 0
    # 5 and 7 ms: a median of 6 ms, but 1000 bytes are too few to say anything per 100 MB.
    assert by_name["preheat-tf"]["fetch_cpu_ms"] == 6.0
    assert by_name["preheat-tf"]["fetch_cpu_s_per_100mb"] is None
    assert by_name["baseline"]["fetch_cpu_s_per_100mb"] is None
    text = table(doc)
    assert "import while fetching: preheat-tf's import / preheat-tf-disk's = 1.25x" in text
    assert "baseline 2 of 3" in text
    assert "INIT phases" in text and "fetch CPU / 100 MB" in text and "6 ms" in text


def test_fetch_cpu_per_100_mb_for_a_real_sized_fetch() -> None:
    run = StrategyRun("preheat-tf", "p")
    run.cold_starts = [_cold("preheat-tf", 0, 2000, 2100, fetch_cpu_ms=260.0)]
    run.cold_starts[0].bytes_by_tier = {"s3": 104_000_000}
    assert summarize(run)["fetch_cpu_s_per_100mb"] == 0.25


def test_the_table_says_how_each_environment_differs_from_this_installation() -> None:
    result = _result()
    result.settings["environments"] = {
        "user": {"asked": ["tensorflow-cpu==2.21.0", "boto3"],
                 "swapped": {"ml-dtypes": ["0.5.4", "0.7.0"]}, "unresolved": None},
        "lean": {"asked": [], "swapped": {}, "unresolved": "no index"},
    }  # fmt: skip
    text = table(result_dict(result))
    assert (
        "user environment: as pip gives it; unlike this installation: ml-dtypes 0.5.4 -> 0.7.0"
        in text
    )
    assert "lean environment: as installed here; pip could not say what it gives (no index)" in text


def test_measurements_run_with_the_setup_objects_frozen_out_of_full_collections() -> None:
    import gc

    from preheat.tools.bench.runner import _no_full_collections

    assert gc.get_freeze_count() == 0
    setup = [object() for _ in range(1000)]
    with _no_full_collections():
        # Everything made before is in the permanent generation: no full pass scans it.
        assert gc.get_freeze_count() >= len(setup)
    assert gc.get_freeze_count() == 0
