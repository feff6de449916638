"""`preheat.tools.profile` end to end through the emulator: a real cold start under -X importtime."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from preheat.tools.emulator import FunctionConfig
from preheat.tools.profile import chart, report
from preheat.tools.profile.run import cold_start

HANDLERS = Path(__file__).resolve().parent / "handlers_profile"


def walk(nodes: list[Mapping[str, Any]], chain: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every import in a profile.json tree as (name, parent, grandparent, ...)."""
    for node in nodes:
        here = (node["name"], *chain)
        yield here
        yield from walk(node.get("children", []), here)


def profile(tmp_path: Path, handler: str, **config: Any) -> dict[str, Any]:
    config.setdefault("timeout_s", 10.0)
    fn = FunctionConfig(name="p", code_dir=HANDLERS, handler=handler, memory_mb=256, **config)
    cold = cold_start(fn, b'{"x": 1}', workdir=tmp_path / "emu")
    return report.build(cold, handler=handler, code_dir=str(HANDLERS), top=10)


def test_a_plain_handler_is_profiled_with_phases_chains_and_a_chart(tmp_path: Path) -> None:
    doc = profile(tmp_path, "app.handler")
    assert doc["outcome"] == "success" and doc["error_type"] is None
    p = doc["phases"]
    assert p["init_ms"] > 0 and p["duration_ms"] > 0
    assert p["handler_module"]["imported"] and p["handler_module"]["name"] == "app"
    assert 0 < p["imports_in_init_ms"] <= p["init_ms"]
    assert 0 < p["import_share_of_init"] <= 1
    # The function's imports hang under its module, with the chain that pulled them in.
    paths = set(walk(doc["tree"]["roots"]))
    assert ("email.mime.nonmultipart", "email.mime.text", "app") in paths
    assert ("xml.dom.minidom", "helper", "app") in paths
    top = {e["name"]: e for e in doc["top"]}
    assert top["email.mime.text"]["chain"] == ["app"]
    assert "app" not in top  # the handler module itself is in the phases
    assert doc["top_self"] and doc["threads"] == 0
    # The runtime client's own start-up is profiled too, outside the handler module.
    assert any(path[-1].startswith("awslambdaric") for path in paths)

    png = chart.draw(doc, tmp_path / "out" / "profile.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_init_failure_still_reports_the_imports_before_it(tmp_path: Path) -> None:
    doc = profile(tmp_path, "broken.handler")
    assert doc["outcome"] == "init_error"
    assert doc["error_type"] == "RuntimeError"
    assert "config file missing" in doc["error_message"]
    assert doc["phases"]["init_ms"] is not None and doc["phases"]["duration_ms"] is None
    assert ("email.mime.text", "broken") in set(walk(doc["tree"]["roots"]))


@pytest.mark.parametrize(
    ("handler", "error_type", "names"),
    [
        ("nope.handler", "Runtime.ImportModuleError", "'nope'"),
        ("app.missing", "Runtime.HandlerNotFound", "'app'"),
    ],
)
def test_a_missing_module_or_function_is_named_in_the_error(
    tmp_path: Path, handler: str, error_type: str, names: str
) -> None:
    doc = profile(tmp_path, handler)
    assert doc["outcome"] == "init_error" and doc["error_type"] == error_type
    assert names in doc["error_message"] and "preheat_profile_entry" not in doc["error_message"]


def test_an_init_timeout_stops_the_environment_and_keeps_the_imports(tmp_path: Path) -> None:
    doc = profile(tmp_path, "slow.handler", init_timeout_s=1.0)
    assert doc["outcome"] == "init_timeout"
    assert doc["phases"]["init_ms"] >= 1000 and doc["phases"]["duration_ms"] is None
    paths = set(walk(doc["tree"]["roots"]))
    # slow is still importing when INIT is stopped: what it imported sits under a placeholder.
    assert ("email.mime.text", "(import that did not finish)") in paths
