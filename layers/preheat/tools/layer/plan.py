"""The runtime layer's plan: what to install, pinned, for which Python and machine."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from preheat import constants as c
from preheat.exceptions import ConfigurationError, LayerTooLarge

Progress = Callable[[str], None]


ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}


# glibc of the OS under each Lambda Python runtime: Amazon Linux 2 up to python3.11,
# Amazon Linux 2023 from python3.12. A wheel built for a newer glibc does not load there.
LAMBDA_GLIBC = {
    "3.9": 26, "3.10": 26, "3.11": 26, "3.12": 34, "3.13": 34, "3.14": 34,
}  # fmt: skip


# ai-edge-litert and numpy wheels need glibc 2.27, newer than Amazon Linux 2's; when the
# running Python is older than this, the LiteRT layer targets this one by default.
OLDEST_AL2023_PYTHON = "3.12"


_HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


# Runtime dependencies per runtime. boto3 is left out: the Lambda Python runtime provides
# it, and bundling botocore would cost about 30 MB of the 250 MB budget.
# aws-xray-sdk is powertools' Tracer backend: Lambda sets AWS_XRAY_DAEMON_ADDRESS in every
# environment, so the inference function's Tracer imports it during INIT.
DEPENDENCIES = {
    "litert": (
        "ai-edge-litert",
        "numpy",
        "orjson",
        "aws-lambda-powertools",
        "aws-xray-sdk",
        "filelock",
        # The fetch engine: chunk GETs in Rust threads, off the interpreter lock.
        "obstore",
    ),
}


_VERSION = re.compile(r"^3\.(\d{1,2})$")


@dataclass(frozen=True)
class Plan:
    runtime: str
    python: str
    arch: str
    requirements: tuple[str, ...]
    interpreter: str | None  # a Python of the target version here, for compile and smoke
    native: bool  # the target machine is this one: stripped files can be tried here

    @property
    def stem(self) -> str:
        return f"preheat-runtime-{self.runtime}-py{self.python.replace('.', '')}-{self.arch}"


def _pin(name: str) -> str:
    # Pin to what this environment runs: the converter and the interpreter stay a pair,
    # and the same inputs give the same layer.
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name


def _version_of(exe: str) -> str | None:
    try:
        proc = subprocess.run(
            [exe, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def find_interpreter(version: str) -> str | None:
    """A working Python `version` on this machine (for precompiling and the smoke import)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob(f"{version}*/bin/python{version}"))]
    return next((c for c in candidates if c and _version_of(c) == version), None)


def default_python(runtime: str) -> str:
    """The running interpreter's version, unless Lambda offers it only on too old a glibc."""
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if runtime == "litert" and LAMBDA_GLIBC.get(running, 34) < LAMBDA_GLIBC[OLDEST_AL2023_PYTHON]:
        return OLDEST_AL2023_PYTHON
    return running


def platforms(python: str, arch: str) -> list[str]:
    """pip --platform tags for wheels that load on the Lambda runtime of `python` and `arch`."""
    machine = ARCHES[arch]
    return [f"manylinux2014_{machine}"] + [
        f"manylinux_2_{minor}_{machine}" for minor in range(17, LAMBDA_GLIBC[python] + 1)
    ]


def plan(runtime: str, *, python: str, arch: str) -> Plan:
    """Check the request and decide what to build; nothing is written."""
    if runtime == "tensorflow":
        raise LayerTooLarge(
            "the tensorflow runtime cannot fit a Lambda layer: TensorFlow is about 1.25 GB "
            "installed (over 900 MB stripped) and Lambda allows 250 MB unzipped for function "
            "and layers; deploy the container image (infra/Dockerfile) or slim the model to "
            "LiteRT (`preheat slim --runtime litert`) and build `--runtime litert`",
            name="tensorflow runtime layer",
            size=900 * 10**6,  # stripped; the least it could be, as the message says
            limit=c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES,
        )
    if runtime not in DEPENDENCIES:
        raise ConfigurationError("runtime", runtime, "use litert (or tensorflow, as an image)")
    m = _VERSION.match(python or "")
    if not m or python not in LAMBDA_GLIBC:
        raise ConfigurationError(
            "python", python, f"use a Lambda Python version: {', '.join(LAMBDA_GLIBC)}"
        )
    if arch not in ARCHES:
        raise ConfigurationError("arch", arch, f"use {' or '.join(ARCHES)}")
    host = _HOST_ARCH.get(platform.machine().lower())
    return Plan(
        runtime=runtime,
        python=python,
        arch=arch,
        requirements=tuple(_pin(n) for n in DEPENDENCIES[runtime]),
        interpreter=find_interpreter(python),
        native=host == arch,
    )
