"""What a Lambda never needs from installed packages, and selective stripping of ELF files.

Each rule says why it is safe; the smoke import (and, in the tests, a LiteRT prediction
from the built layer) proves the layer still works without what was removed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# Directories removed wherever they appear: test suites and C headers.
DIR_NAMES = frozenset({"tests", "test", "include", "__pycache__"})
# File suffixes removed everywhere: type stubs, C/Cython sources and docs.
SUFFIXES = (".pyi", ".pxd", ".pyx", ".c", ".cpp", ".h", ".hpp", ".md", ".rst")
# Paths (relative to python/) that serve development, building or other hardware.
PATHS: dict[str, str] = {
    "bin": "console scripts with the build machine's interpreter path",
    "numpy/f2py": "Fortran wrapper generator, a build tool",
    "numpy/distutils": "build tooling",
    "numpy/_pyinstaller": "PyInstaller hooks",
    "ai_edge_litert/vendors": "NPU compiler plugins (Qualcomm, MediaTek, ...), not on Lambda",
    "ai_edge_litert/tools": "command-line tools",
    "ai_edge_litert/aot": "ahead-of-time compilation for NPUs",
    "ai_edge_litert/libLiteRtWebGpuAccelerator.so": "GPU accelerator; Lambda has no GPU",
    "ai_edge_litert/_pywrap_litert_converter.so": "the converter; conversion runs in `preheat slim`",
    "ai_edge_litert/_pywrap_tensorflow_lite_calibration_wrapper.so": "int8 calibration, conversion-time",
    "ai_edge_litert/_pywrap_tfl_calibration.so": "calibration, conversion-time",
}
# Vendored libraries of manylinux wheels (OpenBLAS, gfortran) are never stripped:
# stripping numpy's OpenBLAS broke `import numpy` in a measurement.
NEVER_STRIP_DIR_SUFFIX = ".libs"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def prune(python_dir: Path) -> dict[str, int]:
    """Remove what a Lambda never needs; return bytes removed per rule."""
    removed: dict[str, int] = {}
    for rel in PATHS:
        target = python_dir / rel
        if target.exists():
            removed[rel] = _size(target)
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    for path in sorted(python_dir.rglob("*"), reverse=True):
        if not path.exists() or path.is_symlink():
            continue
        if path.is_dir() and path.name in DIR_NAMES:
            removed[f"*/{path.name}/"] = removed.get(f"*/{path.name}/", 0) + _size(path)
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in SUFFIXES:
            removed[f"*{path.suffix}"] = removed.get(f"*{path.suffix}", 0) + path.stat().st_size
            path.unlink()
        elif path.is_file() and path.name == "RECORD" and path.parent.name.endswith(".dist-info"):
            # It lists the files removed above; an installer's record no longer true.
            path.unlink()
    return removed


def _is_elf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def strip_candidates(python_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in python_dir.rglob("*.so*")
        if p.is_file()
        and not p.is_symlink()
        and not any(
            part.endswith(NEVER_STRIP_DIR_SUFFIX) for part in p.relative_to(python_dir).parts
        )
        and _is_elf(p)
    )


def _loads(python: str, files: list[Path], python_dir: Path) -> dict[str, str]:
    """Which of `files` fail to load (path -> error), each tried in a clean interpreter."""
    code = (
        "import ctypes, json, sys\n"
        "paths = json.loads(sys.stdin.read())\n"
        "sys.path.insert(0, paths.pop(0))\n"
        "bad = {}\n"
        "for p in paths:\n"
        "    try:\n"
        "        ctypes.CDLL(p)\n"
        "    except OSError as exc:\n"
        "        bad[p] = str(exc)\n"
        "print(json.dumps(bad))\n"
    )
    proc = subprocess.run(
        [python, "-I", "-S", "-c", code],
        input=json.dumps([str(python_dir), *map(str, files)]),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        return {str(f): proc.stderr.strip()[-300:] for f in files}
    bad: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return bad


def strip(
    python_dir: Path,
    *,
    strip_tool: str = "strip",
    python: str = sys.executable,
    say: Callable[[str], None] = lambda _m: None,
) -> tuple[int, list[str]]:
    """`strip --strip-unneeded` each ELF file, keeping a stripped one only if it still loads.

    Returns (bytes saved, relative paths restored because the stripped copy failed to load).
    """
    tool = shutil.which(strip_tool)
    if tool is None:
        return 0, []
    changed: dict[Path, tuple[bytes, int]] = {}
    for path in strip_candidates(python_dir):
        original = path.read_bytes()
        proc = subprocess.run(
            [tool, "--strip-unneeded", str(path)], capture_output=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            path.write_bytes(original)
            continue
        new_size = path.stat().st_size
        if new_size < len(original):
            changed[path] = (original, len(original) - new_size)
        else:
            path.write_bytes(original)
    if not changed:
        return 0, []
    say(f"verifying {len(changed)} stripped files still load")
    failed = _loads(python, list(changed), python_dir)
    restored: list[str] = []
    for name in failed:
        path = Path(name)
        path.write_bytes(changed.pop(path)[0])
        restored.append(path.relative_to(python_dir).as_posix())
    return sum(saved for _, saved in changed.values()), sorted(restored)
