"""A stand-in for Lambda's managed Python runtime: an interpreter that sees only what Lambda has.

A function deployed as zip + layers sees the standard library, what Lambda's runtime brings
(the runtime interface client, boto3 and its dependencies) and its layers under /opt, never
this machine's site-packages. The benchmark runs layer-based strategies with this
interpreter, so that a layer missing a package fails here as it would on Lambda.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from preheat.exceptions import ConfigurationError, ToolProcessError

# What Lambda's python runtime has on its path besides the standard library.
PROVIDED = (
    "awslambdaric",
    "runtime_client",
    "simplejson",
    "snapshot_restore_py",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "six",
    "urllib3",
)


def _origin(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    # A package is linked as its directory, a module as its file.
    return origin.parent if origin.name == "__init__.py" else origin


def provided_dir(into: Path) -> Path:
    """Links to this environment's copies of what Lambda's runtime provides."""
    into.mkdir(parents=True, exist_ok=True)
    for module in PROVIDED:
        origin = _origin(module)
        if origin is not None and not (into / origin.name).exists():
            (into / origin.name).symlink_to(origin, target_is_directory=origin.is_dir())
    return into


def _running() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "preheat" / "lambda-runtime"


def install_provided(version: str, cache: Path | None = None) -> Path:
    """What Lambda's python`version` runtime provides, installed once for that Python (cached).

    Used when the layers target another Python than this one (LiteRT layers target a
    runtime on Amazon Linux 2023): the runtime client has a compiled part per version.
    """
    ric = metadata.version("awslambdaric")
    target = (cache or cache_root()) / f"python{version}-awslambdaric{ric}"
    if (target / ".complete").is_file():
        return target
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", version,
        "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
        "--target", str(target), f"awslambdaric=={ric}", "boto3",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise ToolProcessError(
            f"installing Lambda's runtime client for Python {version}",
            (lines or ["pip failed"])[-1][:300],
            proc.returncode,
        )
    (target / ".complete").touch()
    return target


def interpreter(workdir: Path, version: str | None = None) -> Path:
    """An executable that starts Python `version` (default: this one) without site-packages.

    `-S` drops site-packages (a virtualenv's and the base's) but keeps PYTHONPATH, through
    which the emulator adds the function's code and its layers; the provided packages come
    last, as on Lambda, where layers win over the runtime's copies.
    """
    from preheat.tools.layer.plan import find_interpreter

    version = version or _running()
    if version == _running():
        provided = provided_dir(workdir / "lambda-runtime")
        base = str(getattr(sys, "_base_executable", sys.executable))
    else:
        found = find_interpreter(version)
        if found is None:
            raise ConfigurationError(
                "python", version, f"install python{version} to run this strategy's layers"
            )
        base, provided = found, install_provided(version)
    script = workdir / f"lambda-python{version}"
    script.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}"{shlex.quote(str(provided))}\n'
        "export PYTHONPATH\n"
        f'exec {shlex.quote(base)} -S "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script
