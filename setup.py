"""Build hook: a wheel carries functions/ and infra/ as package data, under preheat/_bundled/.

Everything else is declared in pyproject.toml. The checkout keeps its layout (functions/,
infra/ and layers/ side by side); preheat.tools.assets finds the copy in a wheel, or the checkout's
own folders in an editable install.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("functions", "infra")
TARGET = Path("preheat", "_bundled")


class BuildWithAssets(build_py):  # type: ignore[misc]
    """build_py, then the function sources and templates copied into the built package."""

    def run(self) -> None:
        editable = getattr(self, "editable_mode", False)
        if not editable:
            # build/ outlives a build: a module moved or deleted since the last one would
            # otherwise still ship in the next wheel.
            shutil.rmtree(Path(self.build_lib, "preheat"), ignore_errors=True)
        super().run()
        # An editable install reads the checkout's folders themselves (see preheat.tools.assets).
        if editable:
            return
        for name in BUNDLED:
            src_root = ROOT / name
            for src in sorted(src_root.rglob("*")):
                if not src.is_file() or "__pycache__" in src.parts or src.suffix == ".pyc":
                    continue
                dest = Path(self.build_lib, TARGET, name, src.relative_to(src_root))
                self.mkpath(str(dest.parent))
                self.copy_file(str(src), str(dest))


setup(cmdclass={"build_py": BuildWithAssets})
