"""The runtime layer's install stage: wheels for the target, preheat's shipped part, .pyc files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from preheat.exceptions import LayerBuildError
from preheat.tools.boundary import shipped_files
from preheat.tools.layer.plan import LAMBDA_GLIBC, OLDEST_AL2023_PYTHON, Plan, platforms

Progress = Callable[[str], None]


# Distributions of LAMBDA_PROVIDED, by their normalized names.
_PROVIDED_DISTS = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python_dateutil", "six", "urllib3"}
)


# Under /opt/python on Lambda: where compiled files say their sources live.
LAMBDA_PYTHON_DIR = "/opt/python"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "preheat" / "pip"


def install_requirements(p: Plan, python_dir: Path, cache_dir: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--no-warn-script-location",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        *[arg for tag in platforms(p.python, p.arch) for arg in ("--platform", tag)],
        "--python-version",
        p.python,
        "--target",
        str(python_dir),
        "--cache-dir",
        str(cache_dir),
        *p.requirements,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = next((ln for ln in lines if "ERROR" in ln), lines[-1] if lines else "pip failed")
        hint = (
            f"; Lambda's python{p.python} runs Amazon Linux 2 (glibc 2.{LAMBDA_GLIBC[p.python]}), "
            f"try --python {OLDEST_AL2023_PYTHON} or later"
            if LAMBDA_GLIBC[p.python] < LAMBDA_GLIBC[OLDEST_AL2023_PYTHON]
            else ""
        )
        raise LayerBuildError(
            f"pip could not install {', '.join(p.requirements)} for Python {p.python} "
            f"{p.arch}: {why.strip()[:300]}{hint}"
        )


def drop_lambda_provided(python_dir: Path) -> int:
    """Remove what the Lambda runtime already has but a dependency pulled in (aws-xray-sdk
    depends on botocore): a second copy would only cost room. Returns the bytes removed."""
    removed = 0
    for info in sorted(python_dir.glob("*.dist-info")):
        dist = info.name.split("-", 1)[0].lower().replace("-", "_").replace(".", "_")
        if dist not in _PROVIDED_DISTS:
            continue
        record = info / "RECORD"
        rows = record.read_text().splitlines() if record.is_file() else []
        for row in rows:
            rel = row.split(",", 1)[0]
            target = (python_dir / rel).resolve()
            # RECORD is the wheel's own word, but never act outside the layer on it.
            if python_dir.resolve() in target.parents and target.is_file():
                removed += target.stat().st_size
                target.unlink()
        shutil.rmtree(info, ignore_errors=True)
    for d in sorted(python_dir.iterdir()):
        if d.is_dir() and not any(f.is_file() for f in d.rglob("*")):
            shutil.rmtree(d)
    return removed


def copy_preheat(python_dir: Path) -> None:
    import preheat

    source = Path(preheat.__file__).parent
    target = python_dir / "preheat"
    for src in shipped_files(source):
        dest = target / src.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)


def compile_sources(interpreter: str, python_dir: Path) -> None:
    # Unchecked-hash .pyc: a read-only /opt never changes, so Python need not stat or hash
    # the source on import; no timestamps inside keeps the zip reproducible.
    code = (
        "import compileall, py_compile, sys\n"
        "ok = compileall.compile_dir(sys.argv[1], quiet=2, ddir=sys.argv[2], workers=1,\n"
        "    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)\n"
        "sys.exit(0 if ok else 1)\n"
    )
    proc = subprocess.run(
        [interpreter, "-I", "-S", "-c", code, str(python_dir), LAMBDA_PYTHON_DIR],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise LayerBuildError(
            f"precompiling the layer failed: {(proc.stdout + proc.stderr).strip()[-300:]}"
        )
