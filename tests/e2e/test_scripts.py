"""The checkout's scripts are entry points over the library: thin, and each one starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "scripts").glob("*.py"))
# An entry point parses nothing itself: it imports a main() and calls it.
MAX_LINES = 25


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_script_is_a_thin_entry_point(script: Path) -> None:
    lines = script.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"{script.name} holds logic: move it into preheat.tools"
    assert any(line.startswith("from preheat.tools") for line in lines)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_script_answers_help(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
