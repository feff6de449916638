"""The shipped part of preheat never imports the tools, nor what only the tools need."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import preheat
from preheat.tools.boundary import TOOL_DEPENDENCIES, TOOLS_PACKAGE, shipped_files

PACKAGE = Path(preheat.__file__).parent
ROOT = PACKAGE.parents[1]
# The Lambda functions ship too: their code runs beside the shipped part.
FUNCTIONS = sorted((ROOT / "functions").glob("*/app.py"))


def imported_modules(source: str) -> set[str]:
    """Every absolute module an import statement names, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def crossings(source: str) -> list[str]:
    tools = f"preheat.{TOOLS_PACKAGE}"
    bad = []
    for name in sorted(imported_modules(source)):
        if name == tools or name.startswith(f"{tools}.") or name.split(".")[0] in TOOL_DEPENDENCIES:
            bad.append(name)
    return bad


SHIPPED = [p for p in shipped_files(PACKAGE) if p.suffix == ".py"] + FUNCTIONS


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_module_imports_no_tool(path: Path) -> None:
    assert crossings(path.read_text()) == []


def test_the_check_catches_a_crossing() -> None:
    source = (
        "import moto\n"
        "def f():\n"
        "    from preheat.tools.emulator import Emulator\n"
        "    from preheat.tools import bench\n"
        "    import matplotlib.pyplot\n"
        "from preheat.cache import resolve\n"
    )
    assert crossings(source) == [
        "matplotlib.pyplot",
        "moto",
        "preheat.tools",
        "preheat.tools.bench",
        "preheat.tools.emulator",
        "preheat.tools.emulator.Emulator",
    ]


def test_the_shipped_part_is_the_package_without_its_tools() -> None:
    shipped = {p.relative_to(PACKAGE).parts[0] for p in shipped_files(PACKAGE)}
    assert TOOLS_PACKAGE not in shipped
    # The parts the inference and warmer functions need are all there.
    assert {"cache", "runtimes", "serving", "warm", "artifact", "loader.py"} <= shipped
    assert all(p.is_relative_to(PACKAGE) for p in shipped_files(PACKAGE))


def test_every_preheat_variable_is_named_in_constants_alone() -> None:
    """A variable's name is written once (constants.py); code and functions refer to it."""
    import re

    literal = re.compile(r"""["'](PREHEAT_[A-Z0-9_]+)["']""")
    constants = PACKAGE / "constants.py"
    declared = set(literal.findall(constants.read_text()))
    sources = [p for p in PACKAGE.rglob("*.py") if p != constants and "_bundled" not in p.parts]
    written = {
        f"{p.relative_to(ROOT)}: {name}"
        for p in [*sources, *ROOT.joinpath("functions").rglob("*.py")]
        for name in literal.findall(p.read_text())
    }
    assert written == set()
    assert {"PREHEAT_DEBUG", "PREHEAT_OPT_DIR", "PREHEAT_INIT_BUDGET_S"} <= declared
