"""The runtime layer: preheat's shipped part and its dependencies under `python/`.

A pipeline of stages, one module each: plan (`plan.py`: what to install, for which Python
and machine), install (`install.py`: manylinux wheels, preheat's shipped part, .pyc files),
trim (`prune.py`: prune, strip), prove (`smoke.py`: every module imports in a clean
interpreter), publish (`repro.py`: a reproducible zip named by its hash). This module runs
them in order and reuses an earlier build made from the same inputs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from preheat.exceptions import ConfigurationError, LayerBuildError
from preheat.tools.boundary import shipped_files
from preheat.tools.layer import prune, repro
from preheat.tools.layer.install import (
    compile_sources,
    copy_preheat,
    default_cache_dir,
    drop_lambda_provided,
    install_requirements,
)
from preheat.tools.layer.plan import Plan, default_python, plan
from preheat.tools.layer.result import LayerResult
from preheat.tools.layer.smoke import (
    DEEP_IMPORTS,
    package_sizes,
    preheat_modules,
    provided_dir,
    smoke,
    top_level_modules,
)

Progress = Callable[[str], None]


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


def _trim(p: Plan, python_dir: Path, say: Progress) -> list[str]:
    """Prune what Lambda never imports, then strip ELF files where the result can be tried."""
    say("pruning tests, headers and build-time parts")
    removed = prune.prune(python_dir)
    notes = [f"pruned {sum(removed.values()) / 2**20:.1f} MiB"]
    if p.native and p.interpreter:
        say("stripping ELF files (and checking each still loads)")
        saved, restored = prune.strip(python_dir, python=p.interpreter, say=say)
        notes.append(f"stripped {saved / 2**20:.1f} MiB")
        if restored:
            notes.append(f"kept unstripped (failed to load stripped): {', '.join(restored)}")
    else:
        notes.append(f"strip skipped: no {p.arch} Python {p.python} here to check the result")
    return notes


def _compile(p: Plan, python_dir: Path, say: Progress) -> list[str]:
    if not p.interpreter:
        return [f"precompile skipped: no Python {p.python} interpreter here"]
    say(f"precompiling .pyc for Python {p.python}")
    compile_sources(p.interpreter, python_dir)
    return []


def _prove(p: Plan, python_dir: Path, provided_into: Path, say: Progress) -> list[str]:
    """Import every module in a clean interpreter of the target; a failure stops the build."""
    if not (p.interpreter and p.native):
        return [f"smoke import skipped: no {p.arch} Python {p.python} here"]
    say("smoke-importing every top-level package in a clean interpreter")
    bad = smoke(
        p.interpreter,
        python_dir,
        provided_dir(provided_into),
        (*DEEP_IMPORTS.get(p.runtime, ()), *preheat_modules(python_dir)),
    )
    if bad:
        name, why = sorted(bad.items())[0]
        raise LayerBuildError(
            f"the built layer fails to import {name} ({why}); {len(bad)} of "
            f"{len(top_level_modules(python_dir))} modules failed; the zip was not written"
        )
    return []


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
        install_requirements(p, python_dir, cache)
        drop_lambda_provided(python_dir)
        copy_preheat(python_dir)
        notes += _trim(p, python_dir, say)
        notes += _compile(p, python_dir, say)
        notes += _prove(p, python_dir, staging / "lambda-provided", say)
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
