"""The benchmark end to end on a tiny model: baseline and preheat-tf, one cold start each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from preheat.tools.bench.runner import Options, run
from preheat.tools.bench.summary import table
from tests.fixtures.models import BuiltModel

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def outcome(dense_model: BuiltModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    result = run(
        Options(
            model=dense_model.path,
            strategies="preheat-tf,baseline",
            cold_starts=1,
            warm_requests=3,
            samples=2,
            burst=2,
            out=out,
        )
    )
    doc = orjson.loads(result.json_path.read_bytes())
    return {"doc": doc, "out": out, "chart": result.chart_path}


def test_every_strategy_reports_every_figure(
    outcome: dict[str, Any], dense_model: BuiltModel
) -> None:
    doc = outcome["doc"]
    assert [s["name"] for s in doc["strategies"]] == ["baseline", "preheat-tf"]
    model_bytes = sum(p.stat().st_size for p in dense_model.path.rglob("*") if p.is_file())
    for s in doc["strategies"]:
        assert s["available"] and len(s["cold_starts"]) == 1
        cs = s["cold_starts"][0]
        assert cs["error"] is None
        assert cs["environment"]
        assert cs["init_ms"] > 0
        # What a user waits for includes INIT.
        assert cs["first_response_ms"] >= cs["init_ms"]
        assert cs["first_duration_ms"] > 0
        assert len(cs["warm_ms"]) == 3
        assert cs["max_memory_mb"] > 0
        # The baseline downloads the export; preheat-tf what `preheat push` made of it.
        expected = model_bytes if s["name"] == "baseline" else s["artifact_bytes"]
        assert cs["bytes_by_tier"] == {"s3": expected}
        summary = s["summary"]
        for key in ("init_ms", "first_response_ms", "warm_p50_ms", "warm_p99_ms", "max_memory_mb"):
            assert summary[key] is not None, key
        assert set(s["ratios"]) == {"first_response_speedup", "init_ratio"}
        assert s["ratios"]["first_response_speedup"] > 0
    by_name = {s["name"]: s for s in doc["strategies"]}
    # `preheat push` re-saved the export exact: each weight once, fewer bytes.
    assert 0 < by_name["preheat-tf"]["artifact_bytes"] < model_bytes
    phases = {s["name"]: set(s["cold_starts"][0]["phases_ms"]) for s in doc["strategies"]}
    assert phases["baseline"] == {"download", "import", "load"}
    assert {"import", "load", "warmup", "fetch"} <= phases["preheat-tf"]


def test_parity_is_exact_for_both_on_the_same_inputs(outcome: dict[str, Any]) -> None:
    for s in outcome["doc"]["strategies"]:
        p = s["cold_starts"][0]["parity"]
        # The first request and three warm ones, cycling through two distinct inputs.
        assert p["samples"] == 4
        assert p["max_abs_error"] == 0.0 and p["bit_identical"], s["name"]


def test_burst_cold_starts_distinct_environments_at_once(outcome: dict[str, Any]) -> None:
    bursts = {b["strategy"]: b for b in outcome["doc"]["bursts"]}
    assert set(bursts) == {"baseline", "preheat-tf"}
    for b in bursts.values():
        envs = b["environments"]
        assert b["size"] == 2 and b["summary"]["distinct_environments"] == 2
        assert all(e["error"] is None and e["init_ms"] > 0 for e in envs)
        # Each answer came after the common release, so none took longer than the last one.
        assert b["all_answered_ms"] >= max(e["first_response_ms"] for e in envs)
    assert bursts["baseline"]["summary"]["speedup_vs_baseline"] == 1.0


def test_results_are_written_and_nothing_is_left_running(outcome: dict[str, Any]) -> None:
    doc = outcome["doc"]
    assert doc["network"] == {
        "profile": "loopback",
        "shaped": False,
        "rate_mbit": None,
        "measured_mbit": None,
        "note": None,
    }
    assert outcome["chart"].read_bytes()[:4] == b"\x89PNG"
    assert not (outcome["out"] / "work").exists()
    assert _children(os.getpid()) == []


def test_warm_requests_are_measured_per_protocol_beside_the_models_own_time(
    outcome: dict[str, Any],
) -> None:
    by_name = {s["name"]: s for s in outcome["doc"]["strategies"]}
    # The baseline's function speaks only its own JSON form.
    assert by_name["baseline"]["cold_starts"][0]["protocols"] == []
    assert by_name["baseline"]["summary"]["protocols"] == []
    tf = by_name["preheat-tf"]
    runs = {p["protocol"]: p for p in tf["cold_starts"][0]["protocols"]}
    assert list(runs) == ["json", "oip-binary", "tfserving"]
    for protocol, p in runs.items():
        assert p["error"] is None, protocol
        assert len(p["warm_ms"]) == 3 and all(ms > 0 for ms in p["warm_ms"]), protocol
        # One predict line per warm request (the cold start's first request apart).
        assert len(p["predict_ms"]) == 3 and all(ms > 0 for ms in p["predict_ms"]), protocol
        assert len(p["request_bytes"]) == 3 and min(p["request_bytes"]) > 0, protocol
        assert p["parity"]["bit_identical"], protocol
    # The JSON run is the cold start's own warm requests.
    assert runs["json"]["warm_ms"] == tf["cold_starts"][0]["warm_ms"]
    summary = {p["protocol"]: p for p in tf["summary"]["protocols"]}
    for protocol, p in summary.items():
        assert p["requests"] == 3 and p["errors"] == [], protocol
        assert 0 < p["predict_p50_ms"] < p["warm_p50_ms"] <= p["warm_p99_ms"], protocol
        assert p["overhead_p50_ms"] == p["warm_p50_ms"] - p["predict_p50_ms"], protocol
    text = table(outcome["doc"])
    assert "predict p50" in text and "overhead p50" in text
    assert any(line.split()[:2] == ["preheat-tf", "oip-binary"] for line in text.splitlines())
