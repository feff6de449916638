"""The LiteRT runtime: run a `litert` artifact's `model.tflite` with ai-edge-litert.

Imports only ai_edge_litert and numpy (the LiteRT runtime layer has no TensorFlow). The
interpreter reads the file where it lies, so a read-only layer path is used without a copy.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from preheat.artifact.manifest import Manifest, Signature
from preheat.exceptions import LoadError
from preheat.runtimes import warm_up

MODEL_FILE = "model.tflite"


class LiteRTModel:
    """A LiteRT model behind the `runtimes.base.Model` protocol."""

    def __init__(self, interpreter: Any, manifest: Manifest) -> None:
        self._manifest = manifest
        self._interpreter = interpreter
        key = manifest.signature.key
        runners = interpreter.get_signature_list()
        if key not in runners:
            # A converter names a lone signature after its SavedModel key; older ones did not.
            if len(runners) != 1:
                raise LoadError(
                    f"model {manifest.name}/{manifest.version}: LiteRT model has signatures "
                    f"{sorted(runners)}, not {key!r}; re-create it with `preheat slim`",
                    model=f"{manifest.name}/{manifest.version}",
                    runtime="litert",
                    stage="signature",
                )
            key = next(iter(runners))
        self._runner = interpreter.get_signature_runner(key)
        details = self._runner.get_input_details()
        self._dtypes = {name: np.dtype(d["dtype"]) for name, d in details.items()}
        missing = {t.name for t in manifest.signature.inputs} - set(self._dtypes)
        if missing:
            raise LoadError(
                f"model {manifest.name}/{manifest.version}: LiteRT model lacks inputs "
                f"{sorted(missing)} that its manifest lists; re-create it with `preheat slim`",
                model=f"{manifest.name}/{manifest.version}",
                runtime="litert",
                stage="signature",
            )
        # One interpreter holds one set of tensors: calls must not interleave.
        self._lock = threading.Lock()

    @property
    def signature(self) -> Signature:
        return self._manifest.signature

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {
            name: np.ascontiguousarray(value, dtype=self._dtypes[name])
            for name, value in inputs.items()
        }
        with self._lock:
            # The signature runner resizes its inputs to each call's shapes (dynamic batch).
            outputs = self._runner(**feed)
        # The runner's arrays are views of interpreter memory that the next call overwrites.
        return {name: np.array(value, copy=True) for name, value in outputs.items()}


def model_file(directory: Path, manifest: Manifest) -> Path:
    names = [f.path for f in manifest.files if f.path.endswith(".tflite")]
    if len(names) != 1:
        raise LoadError(
            f"model {manifest.name}/{manifest.version}: a litert artifact holds exactly one "
            f".tflite file, this one lists {len(names)}; re-create it with `preheat slim`",
            model=f"{manifest.name}/{manifest.version}",
            runtime="litert",
        )
    return directory / names[0]


def load(directory: Path, manifest: Manifest, *, warmup: bool = True) -> LiteRTModel:
    """Build the model from the artifact in `directory` (read in place, never copied)."""
    from ai_edge_litert.interpreter import Interpreter

    path = model_file(directory, manifest)
    try:
        interpreter = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as exc:
        raise LoadError(
            f"model {manifest.name}/{manifest.version}: LiteRT cannot read {path.name}: {exc}",
            model=f"{manifest.name}/{manifest.version}",
            runtime="litert",
        ) from exc
    model = LiteRTModel(interpreter, manifest)
    if warmup:
        # The first invoke allocates the tensor arena and packs weights: pay it in INIT.
        warm_up(model)
    return model
