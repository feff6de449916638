"""The benchmark's SnapStart strategy end to end on a tiny model: each cold start publishes a
version (INIT and the before-snapshot hooks on Python 3.12) and restores it through
awslambdaric's own path; the results keep it out of the headline and report it apart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from preheat.tools.bench.runner import Options, run
from preheat.tools.bench.summary import SNAPSTART_CAVEAT, table
from tests.fixtures.models import BuiltModel

pytestmark = pytest.mark.slow
NAME = "preheat-litert-snapstart"


@pytest.fixture(scope="module")
def outcome(dense_model: BuiltModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-snapstart")
    said: list[str] = []
    result = run(
        Options(
            model=dense_model.path,
            strategies=NAME,
            cold_starts=2,
            warm_requests=3,
            samples=2,
            out=out,
        ),
        said.append,
    )
    doc = orjson.loads(result.json_path.read_bytes())
    return {"doc": doc, "out": out, "said": said}


def test_each_cold_start_restores_a_published_snapshot(outcome: dict[str, Any]) -> None:
    (s,) = outcome["doc"]["strategies"]
    assert s["name"] == NAME and s["snapstart"] is True and s["available"], s.get("reason")
    assert len(s["cold_starts"]) == 2
    environments = set()
    for cs in s["cold_starts"]:
        assert cs["error"] is None
        # A restore: REPORT has a Restore Duration and no Init Duration.
        assert cs["restore_ms"] > 0 and cs["init_ms"] is None
        # The environment's INIT ran before its snapshot, when the version was published.
        assert 0 < cs["snapshot_init_ms"] < cs["publish_ms"]
        # The restore is the first request's wait, not INIT's.
        assert cs["restore_ms"] < cs["first_response_ms"] < cs["snapshot_init_ms"]
        assert len(cs["warm_ms"]) == 3
        # The LiteRT fp16 artifact answers the same inputs close to the source model.
        assert cs["parity"]["samples"] == 4 and cs["parity"]["top1_agreement"] is not None
        environments.add(cs["environment"])
    assert len(environments) == 2
    m = s["summary"]
    for key in ("restore_ms", "first_response_ms", "warm_p50_ms", "snapshot_init_ms"):
        assert m[key] is not None and m[key] > 0, key
    assert s["ratios"] is None
    assert any(f"{NAME}: publishing a version" in line for line in outcome["said"])


def test_the_section_stands_apart_from_the_headline(outcome: dict[str, Any]) -> None:
    doc = outcome["doc"]
    assert doc["snapstart"] == {"strategies": [NAME], "caveat": SNAPSTART_CAVEAT}
    text = table(doc)
    head, _, section = text.partition("SnapStart: ")
    assert NAME not in head
    assert f"note: {SNAPSTART_CAVEAT}" in section
    (row,) = [line for line in section.splitlines() if line.startswith(NAME)]
    restore = doc["strategies"][0]["summary"]["restore_ms"]
    assert row.split()[1] == (f"{restore:.1f}" if restore < 10 else f"{restore:.0f}")
    assert (outcome["out"] / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert not (outcome["out"] / "work").exists()


def test_nothing_is_left_running(outcome: dict[str, Any]) -> None:
    me = os.getpid()
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and fields[0] != "Z":
                children.append(int(entry))
    assert children == []
