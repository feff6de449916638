"""The line between what ships to Lambda and the operator's tools, drawn once.

Everything in the `preheat` package outside `preheat.tools` runs inside Lambda (cache tiers,
loaders, serving protocols, warm ping, warmer engine, settings) and ships in the runtime
layer or the image. `preheat.tools` (CLI, slimmer, layer builder, push, deploy, local
Lambda, bench, profiler) never ships. The runtime layer copies what this module lists, and
a test holds the shipped part to never importing a tool module or a tool dependency.
"""

from __future__ import annotations

from pathlib import Path

TOOLS_PACKAGE = "tools"
# What a wheel's build adds under the package (setup.py): function sources and templates,
# needed by the tools only.
BUNDLED = "_bundled"
# Distributions only the tools use; importing one from the shipped part would fail in Lambda
# (absent) or bloat the layer. Import names, not distribution names.
TOOL_DEPENDENCIES = (
    "awslambdaric",
    "cfnlint",
    "matplotlib",
    "moto",
    "tritonclient",
    "awscrt",
    "yaml",
    "pytest",
)


def shipped_files(package_dir: Path) -> list[Path]:
    """Every source file of the shipped part under `package_dir` (the `preheat` folder)."""
    skip = {package_dir / TOOLS_PACKAGE, package_dir / BUNDLED}
    found = []
    for path in sorted(package_dir.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        if any(path.is_relative_to(s) for s in skip):
            continue
        found.append(path)
    return found
