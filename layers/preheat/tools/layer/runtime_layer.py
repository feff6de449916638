"""The runtime layer: preheat's runtime part and its dependencies under `python/`.

A pipeline of stages — plan (what to install, for which Python and machine), install
(manylinux wheels with pip), trim (prune, strip), compile (.pyc for the target Python),
prove (smoke import in a clean interpreter), publish (reproducible zip named by its hash).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from preheat import constants as c
from preheat.exceptions import ConfigurationError, LayerBuildError, LayerTooLarge
from preheat.tools.boundary import shipped_files
from preheat.tools.layer import prune, repro
from preheat.tools.layer.result import LayerResult

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
# Imported by the smoke test besides every top-level package: the modules that load and run
# a model, whose native parts a top-level import alone does not touch.
DEEP_IMPORTS = {
    "litert": (
        "ai_edge_litert.interpreter",
        "preheat.runtimes.litert",
        "aws_xray_sdk.core",
        "obstore.store",
    )
}
# Importable in Lambda's own runtime (not in the layer): the smoke import sees these too.
LAMBDA_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
# Under /opt/python on Lambda: where compiled files say their sources live.
LAMBDA_PYTHON_DIR = "/opt/python"
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


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "preheat" / "pip"


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


def _install(p: Plan, python_dir: Path, cache_dir: Path) -> None:
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


# Distributions of LAMBDA_PROVIDED, by their normalized names.
_PROVIDED_DISTS = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python_dateutil", "six", "urllib3"}
)


def _drop_lambda_provided(python_dir: Path) -> int:
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


def _copy_preheat(python_dir: Path) -> None:
    import preheat

    source = Path(preheat.__file__).parent
    target = python_dir / "preheat"
    for src in shipped_files(source):
        dest = target / src.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)


def _compile(interpreter: str, python_dir: Path) -> None:
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


def preheat_modules(python_dir: Path) -> tuple[str, ...]:
    """Every module of preheat's runtime part in the layer: each must import there."""
    root = python_dir / "preheat"
    return tuple(
        sorted(
            "preheat."
            + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            for p in root.rglob("*.py")
            if p.name != "__main__.py" and p != root / "__init__.py"
        )
    )


def top_level_modules(python_dir: Path) -> list[str]:
    """Every importable top-level name in the layer (namespace packages by their children)."""
    names: set[str] = set()
    for entry in python_dir.iterdir():
        if entry.name.endswith((".dist-info", ".data", ".libs")) or entry.name.startswith(
            ("_", ".")
        ):
            continue
        if entry.is_dir() and entry.name.isidentifier():
            if (entry / "__init__.py").exists():
                names.add(entry.name)
            else:
                names.update(
                    f"{entry.name}.{child.name}"
                    for child in entry.iterdir()
                    if child.is_dir() and (child / "__init__.py").exists()
                )
        elif entry.suffix == ".py" and entry.stem.isidentifier():
            names.add(entry.stem)
        elif ".so" in entry.suffixes and entry.name.split(".")[0].isidentifier():
            names.add(entry.name.split(".")[0])
    return sorted(names)


def provided_dir(into: Path) -> Path:
    """A directory of links to this environment's copies of what Lambda's runtime provides."""
    into.mkdir(parents=True, exist_ok=True)
    for name in LAMBDA_PROVIDED:
        try:
            spec_file = metadata.distribution(
                {"dateutil": "python-dateutil"}.get(name, name)
            ).locate_file(name)
        except metadata.PackageNotFoundError:
            continue
        for candidate in (Path(str(spec_file)), Path(f"{spec_file}.py")):
            if candidate.exists():
                (into / candidate.name).symlink_to(candidate)
                break
    return into


def smoke(
    interpreter: str,
    python_dir: Path,
    provided: Path | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, str]:
    """Import every top-level module of the layer in a clean interpreter; failures by name.

    The interpreter runs isolated (-I -S): it sees the layer and, like Lambda, the packages
    its runtime provides (`provided`), never this environment's site-packages.
    """
    modules = [*top_level_modules(python_dir), *extra]
    code = (
        "import importlib, json, sys\n"
        "sys.path[:0] = [p for p in sys.argv[1:3] if p]\n"
        "bad = {}\n"
        "for name in json.loads(sys.stdin.read()):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except BaseException as exc:\n"
        "        bad[name] = f'{type(exc).__name__}: {exc}'[:300]\n"
        "print(json.dumps(bad))\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(python_dir)}
    proc = subprocess.run(
        [interpreter, "-I", "-S", "-c", code, str(python_dir), str(provided or "")],
        input=json.dumps(modules),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return {"<interpreter>": proc.stderr.strip()[-300:]}
    bad: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return bad


def package_sizes(python_dir: Path) -> dict[str, int]:
    """Unzipped bytes per distribution-ish group: numpy and numpy.libs count as numpy."""
    sizes: dict[str, int] = {}
    for path in python_dir.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        parts = path.relative_to(python_dir).parts
        # A top-level module's .pyc counts for that module.
        top = parts[1] if parts[0] == "__pycache__" and len(parts) > 1 else parts[0]
        if top.endswith(".dist-info"):
            top = top.split("-")[0]
        top = top.removesuffix(".libs").split(".")[0].lower()
        sizes[top] = sizes.get(top, 0) + path.stat().st_size
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def inputs_key(p: Plan) -> str:
    """A hash of everything a build reads: the plan, preheat's runtime part and this builder."""
    import hashlib

    import preheat

    h = hashlib.sha256(json.dumps([p.runtime, p.python, p.arch, p.requirements]).encode())
    source = Path(preheat.__file__).parent
    files = [Path(__file__), Path(prune.__file__), Path(repro.__file__)]
    files += shipped_files(source)
    for f in files:
        h.update(f"{f.relative_to(source).as_posix()}\0".encode() + f.read_bytes())
    return h.hexdigest()


def _record(out: Path, p: Plan, key: str) -> Path:
    return out / f".{p.stem}.inputs-{key[:16]}.json"


def _previous(out: Path, p: Plan, key: str) -> LayerResult | None:
    """The layer an earlier build made from the same inputs, if its zip is still intact."""
    try:
        data = json.loads(_record(out, p, key).read_text())
        zip_path = out / data["zip"]
        if zip_path.is_symlink() or repro.sha256(zip_path) != data["sha256"]:
            return None
        return LayerResult(
            kind="runtime",
            name=p.stem,
            zip_path=zip_path,
            sha256=data["sha256"],
            zipped_bytes=zip_path.stat().st_size,
            unzipped_bytes=int(data["unzipped_bytes"]),
            packages={str(k): int(v) for k, v in data["packages"].items()},
            reused=True,
            notes=(*data["notes"], "reused: same inputs as an earlier build"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def build_runtime_layer(
    runtime: str,
    out: Path,
    *,
    python: str | None = None,
    arch: str = "x86_64",
    progress: Progress | None = None,
    cache_dir: Path | None = None,
    reuse: bool = True,
) -> LayerResult:
    """Build the runtime layer zip for `runtime` in `out`.

    With `reuse`, a zip an earlier build made in `out` from the same inputs (pinned
    requirements, target, preheat's runtime sources, this builder) is returned at once.
    """
    say: Progress = progress or (lambda _m: None)
    p = plan(
        runtime,
        python=python or default_python(runtime),
        arch=arch,
    )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigurationError("out", str(out), "is a file; give a directory for the layer zips")
    out.mkdir(parents=True, exist_ok=True)
    key = inputs_key(p)
    if reuse and (previous := _previous(out, p, key)) is not None:
        say(f"reusing {previous.zip_path.name}: same inputs as an earlier build")
        return previous
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".build-"))
    try:
        python_dir = staging / "python"
        python_dir.mkdir()
        say(f"installing {len(p.requirements)} packages for Python {p.python} {p.arch}")
        _install(p, python_dir, cache)
        _drop_lambda_provided(python_dir)
        _copy_preheat(python_dir)
        say("pruning tests, headers and build-time parts")
        removed = prune.prune(python_dir)
        notes.append(f"pruned {sum(removed.values()) / 2**20:.1f} MiB")
        if p.native and p.interpreter:
            say("stripping ELF files (and checking each still loads)")
            saved, restored = prune.strip(python_dir, python=p.interpreter, say=say)
            notes.append(f"stripped {saved / 2**20:.1f} MiB")
            if restored:
                notes.append(f"kept unstripped (failed to load stripped): {', '.join(restored)}")
        else:
            notes.append(f"strip skipped: no {p.arch} Python {p.python} here to check the result")
        if p.interpreter:
            say(f"precompiling .pyc for Python {p.python}")
            _compile(p.interpreter, python_dir)
        else:
            notes.append(f"precompile skipped: no Python {p.python} interpreter here")
        if p.interpreter and p.native:
            say("smoke-importing every top-level package in a clean interpreter")
            bad = smoke(
                p.interpreter,
                python_dir,
                provided_dir(staging / "lambda-provided"),
                (*DEEP_IMPORTS.get(p.runtime, ()), *preheat_modules(python_dir)),
            )
            if bad:
                name, why = sorted(bad.items())[0]
                raise LayerBuildError(
                    f"the built layer fails to import {name} ({why}); {len(bad)} of "
                    f"{len(top_level_modules(python_dir))} modules failed; the zip was not written"
                )
        else:
            notes.append(f"smoke import skipped: no {p.arch} Python {p.python} here")
        sizes = package_sizes(python_dir)
        say("writing the reproducible zip")
        shutil.rmtree(staging / "lambda-provided", ignore_errors=True)
        zip_path, digest, zipped, unzipped, reused = repro.publish(staging, out, p.stem)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = LayerResult(
        kind="runtime",
        name=p.stem,
        zip_path=zip_path,
        sha256=digest,
        zipped_bytes=zipped,
        unzipped_bytes=unzipped,
        packages=sizes,
        reused=reused,
        notes=tuple(notes),
    )
    record = {
        "zip": zip_path.name,
        "sha256": digest,
        "unzipped_bytes": unzipped,
        "packages": sizes,
        "notes": notes,
    }
    _record(out, p, key).write_text(json.dumps(record, indent=1, sort_keys=True))
    return result
