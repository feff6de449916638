"""The local work a deploy needs, each step a function that can be swapped for a test.

Slimming, the runtime layer and the model layer come from their own parts of preheat
(`preheat.tools.slim`, `preheat.tools.layer`); the code zips of the two functions are built here.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from preheat.exceptions import DeployError
from preheat.tools import assets
from preheat.tools.layer import repro

Say = Callable[[str], None]


def template_path() -> Path:
    return assets.infra_dir() / "template.yaml"


def bucket_template_path() -> Path:
    """The first step of a new stack: the same bucket resources, nothing else."""
    return assets.infra_dir() / "bucket.yaml"


def unzipped_size(path: Path) -> int:
    with zipfile.ZipFile(path) as zf:
        return sum(i.file_size for i in zf.infolist())


@dataclass(frozen=True)
class BuiltZip:
    path: Path
    sha256: str
    size: int
    unzipped: int


def describe_zip(path: Path) -> BuiltZip:
    return BuiltZip(path, repro.sha256(path), path.stat().st_size, unzipped_size(path))


def code_zip(function: str, out_dir: Path, functions_dir: Path | None = None) -> BuiltZip:
    """Zip `functions/<function>/` (its Python files) reproducibly; app.handler is the entry."""
    if functions_dir is None:
        src = assets.function_dir(function)
    else:
        src = functions_dir / function
        if not (src / "app.py").is_file():
            raise DeployError(
                f"function code {src}/app.py not found: give the functions/ folder of preheat",
                resource=f"{src}/app.py",
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{function}.zip"
    # The layer builder's writer: the same files give the same bytes, so the same S3 key.
    repro.write(src, target, include=_is_source)
    return describe_zip(target)


def _is_source(zip_name: str) -> bool:
    return zip_name.endswith(".py") and "__pycache__" not in zip_name.split("/")


def slim_model(
    src: Path, out: Path, *, runtime: str, precision: str | None, name: str, say: Say
) -> Path:
    """A SavedModel slimmed into an artifact for `runtime` (parity checked by the slimmer)."""
    from preheat.tools.slim import slim

    result = slim(
        src,
        out,
        runtime=runtime,
        precision=precision,
        name=name,
        version="0",
        force=True,
        progress=say,
    )
    return result.out


def runtime_layer(runtime: str, out: Path, *, python: str, arch: str, say: Say) -> BuiltZip:
    """The runtime layer (preheat and its runtime dependencies) from the layer builder."""
    try:
        from preheat.tools import layer
    except ImportError as exc:  # the layer builder is a separate part of preheat
        raise DeployError(
            f"the layer builder is not available ({exc}); pass --runtime-layer ZIP",
            resource=f"{runtime} runtime layer",
        ) from None
    say(f"building the {runtime} runtime layer for Python {python} on {arch}")
    built = layer.build_runtime_layer(runtime, out, python=python, arch=arch, progress=say)
    return describe_zip(built.zip_path)


def model_layer(artifact: Path, out: Path, *, say: Say) -> BuiltZip:
    """The model layer: the artifact where the read-only tier finds it under /opt."""
    try:
        from preheat.tools import layer
    except ImportError as exc:
        raise DeployError(
            f"the layer builder is not available ({exc}); pass --no-model-layer",
            resource="model layer",
        ) from None
    say("building the model layer")
    return describe_zip(layer.build_model_layer(artifact, out).zip_path)


@dataclass(frozen=True)
class Stages:
    """The local steps of a deploy; tests pass prebuilt results instead of the slow ones."""

    slim: Callable[..., Path] = slim_model
    runtime_layer: Callable[..., BuiltZip] = runtime_layer
    model_layer: Callable[..., BuiltZip] = model_layer
    code_zip: Callable[..., BuiltZip] = code_zip
