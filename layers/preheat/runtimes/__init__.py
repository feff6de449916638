"""The runtimes that turn an artifact directory into a `Model`: TensorFlow and LiteRT.

Each runtime module offers `load(directory, manifest, *, warmup=True) -> Model` and is
imported only when an artifact of its kind is loaded, so `import preheat` stays light.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, cast

from preheat.exceptions import LoadError, UnsupportedModel, first_line
from preheat.runtimes import imports

if TYPE_CHECKING:
    from preheat.artifact.manifest import Manifest
    from preheat.runtimes.base import Model
    from preheat.runtimes.imports import RuntimeImport
    from preheat.settings import Settings

# manifest.runtime → the module that loads it.
RUNTIME_MODULES: dict[str, str] = {
    "tensorflow": "preheat.runtimes.tensorflow",
    "litert": "preheat.runtimes.litert",
}


def _module_name(manifest: Manifest) -> str:
    module_name = RUNTIME_MODULES.get(manifest.runtime)
    if module_name is None:
        raise UnsupportedModel(
            f"runtime {manifest.runtime!r} of {manifest.name}/{manifest.version} is not one of "
            f"{', '.join(RUNTIME_MODULES)}"
        )
    return module_name


def _not_installed(manifest: Manifest, exc: ModuleNotFoundError) -> LoadError:
    return LoadError(
        f"{manifest.name}/{manifest.version} needs the {manifest.runtime} runtime, but "
        f"{exc.name} is not installed here; deploy the container image for TensorFlow "
        "artifacts, or the LiteRT runtime layer for LiteRT ones (`preheat slim`)"
    )


def import_for(manifest: Manifest, settings: Settings | None = None) -> RuntimeImport:
    """Import the runtime `manifest` names, once per process (a no-op when already done)."""
    _module_name(manifest)
    try:
        return imports.ensure(manifest.runtime, settings)
    except ModuleNotFoundError as exc:
        raise _not_installed(manifest, exc) from exc


def load(directory: Path, manifest: Manifest, *, warmup: bool = True) -> Model:
    """Build the model in `directory` with the runtime its manifest names."""
    module_name = _module_name(manifest)
    # Usually a no-op: the runtime was imported early in INIT (see runtimes/imports.py).
    import_for(manifest)
    try:
        module = importlib.import_module(module_name)
        return cast("Model", module.load(directory, manifest, warmup=warmup))
    except ModuleNotFoundError as exc:
        raise _not_installed(manifest, exc) from exc


def warm_up(model: Model) -> None:
    """One inference on zeros shaped like the signature (dynamic dimensions set to 1).

    Run during INIT so the first request pays no tracing, allocation or first-call cost.
    """
    from preheat.runtimes.base import example_inputs

    try:
        model.predict(example_inputs(model.signature))
    except Exception as exc:  # any runtime's failure becomes one line for the user
        m = model.manifest
        raise LoadError(
            f"the warm-up inference of {m.name}/{m.version} failed: {first_line(exc)}; "
            "set PREHEAT_WARMUP=0 to skip it",
            model=f"{m.name}/{m.version}",
            runtime=m.runtime,
            stage="warm-up",
        ) from exc


__all__ = ["RUNTIME_MODULES", "import_for", "load", "warm_up"]
