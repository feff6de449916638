"""`preheat profile` as a user runs it: a subprocess, a handler directory, files and JSON out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

HANDLERS = Path(__file__).resolve().parent.parent / "functional" / "handlers_profile"


def preheat(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preheat.tools.cli", "profile", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_json_names_the_costly_imports_and_writes_both_files(tmp_path: Path) -> None:
    done = preheat(
        f"{HANDLERS}:app.handler", "--json", "--top", "5", "--env", "GREETING=hi",
        "--memory-mb", "256", "--event", '{"x": 1}', "--out", "out", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = orjson.loads(done.stdout)
    assert doc["outcome"] == "success" and "tree" not in doc
    assert doc["phases"]["init_ms"] > 0 and doc["phases"]["duration_ms"] > 0
    assert len(doc["top"]) == 5 and len(doc["top_self"]) == 5
    assert {"name": "email.mime.text", "chain": ["app"]}.items() <= {
        k: v for e in doc["top"] for k, v in e.items() if e["name"] == "email.mime.text"
    }.items()
    saved = orjson.loads((tmp_path / "out" / "profile.json").read_bytes())
    assert saved["tree"]["roots"] and saved["top"] == doc["top"]
    assert (tmp_path / "out" / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Traceback" not in done.stderr


def test_text_output_shows_phases_and_chains(tmp_path: Path) -> None:
    done = preheat(f"{HANDLERS}:app.handler", "--top", "3", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "INIT" in done.stdout and "Duration in the REPORT" in done.stdout
    assert "email.mime.text ← app" in done.stdout
    assert "cold start" in done.stderr  # progress


@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("nonsense", [], "use DIR:module.handler"),
        ("/no/such/dir:app.handler", [], "use an existing directory"),
        (f"{HANDLERS}:app", [], "use module.function"),
        (f"{HANDLERS}:app.handler", ["--event", "{not json"], "it is not JSON"),
        (f"{HANDLERS}:app.handler", ["--python", "/no/python"], "a Python interpreter"),
    ],
)
def test_bad_input_is_one_line_and_exits_non_zero(
    tmp_path: Path, target: str, extra: list[str], message: str
) -> None:
    done = preheat(target, *extra, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("preheat profile: error:"), done.stderr
    assert message in lines[0]
    assert not (tmp_path / "preheat-profile").exists()


def test_init_failure_reports_the_imports_then_one_error_line(tmp_path: Path) -> None:
    done = preheat(f"{HANDLERS}:broken.handler", "--out", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert "email.mime.text ← broken" in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "preheat profile: error: INIT of broken.handler failed with RuntimeError"
    )
    assert "config file missing" in last and "Traceback" not in done.stderr
    assert (tmp_path / "out" / "profile.json").is_file()


def test_help_explains_with_an_example(tmp_path: Path) -> None:
    done = preheat("--help", cwd=tmp_path)
    assert done.returncode == 0
    assert "preheat profile functions/inference:app.handler" in done.stdout
    assert "5%" in done.stdout and "--init-timeout" in done.stdout
