"""The TensorFlow runtime: describe a SavedModel's signatures, load it and warm it up.

TensorFlow is imported inside the functions, never at module import, so that
`import preheat` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from preheat.artifact.manifest import Manifest, Signature, TensorSpec
from preheat.exceptions import LoadError, UnsupportedModel
from preheat.runtimes import warm_up

SERVING_KEY = "serving_default"


def _dtype_name(dtype: Any) -> str:
    return "string" if dtype.name == "string" else str(dtype.name)


def _shape(shape: Any) -> tuple[int | None, ...] | None:
    if shape.rank is None:
        return None
    return tuple(None if d is None else int(d) for d in shape.as_list())


def signature_of(key: str, fn: Any) -> Signature:
    """A manifest Signature from a concrete signature function of a loaded SavedModel."""
    _, kwargs = fn.structured_input_signature
    inputs = tuple(
        TensorSpec(name, _dtype_name(spec.dtype), _shape(spec.shape))
        for name, spec in sorted(kwargs.items())
    )
    outputs_struct = fn.structured_outputs
    if not isinstance(outputs_struct, dict):
        raise UnsupportedModel(f"signature {key!r} does not return a dict of named outputs")
    outputs = tuple(
        TensorSpec(name, _dtype_name(t.dtype), _shape(t.shape))
        for name, t in sorted(outputs_struct.items())
    )
    return Signature(key=key, inputs=inputs, outputs=outputs)


def describe_saved_model(path: Path) -> tuple[Signature, tuple[Signature, ...]]:
    """The serving signature of the SavedModel at `path` and all its other signatures."""
    import tensorflow as tf

    if not (path / "saved_model.pb").is_file():
        raise UnsupportedModel(f"{path} is not a SavedModel: it has no saved_model.pb")
    loaded = tf.saved_model.load(str(path))
    sigs = dict(loaded.signatures)
    if not sigs:
        raise UnsupportedModel(
            f"SavedModel {path} has no signatures; export it with a serving signature "
            "(model.export(path) in Keras 3, or tf.saved_model.save(..., signatures=...))"
        )
    key = SERVING_KEY if SERVING_KEY in sigs else sorted(sigs)[0]
    main = signature_of(key, sigs[key])
    others = tuple(signature_of(k, sigs[k]) for k in sorted(sigs) if k != key)
    return main, others


class TensorFlowModel:
    """A loaded SavedModel's serving signature, answering with numpy arrays."""

    def __init__(self, loaded: Any, fn: Any, manifest: Manifest, directory: Path) -> None:
        # `loaded` owns the variables and assets the signature function reads: keep it alive.
        self._loaded = loaded
        self._fn = fn
        self._manifest = manifest
        self.directory = directory
        # Filled by preheat.loader: where the model came from and what each INIT phase cost.
        self.init_report: dict[str, Any] = {}

    @property
    def signature(self) -> Signature:
        return self._manifest.signature

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        tensors = {
            spec.name: tf.constant(inputs[spec.name], dtype=_tf_dtype(spec.dtype))
            for spec in self.signature.inputs
        }
        outputs = self._fn(**tensors)
        return {name: value.numpy() for name, value in outputs.items()}

    def __repr__(self) -> str:
        m = self._manifest
        return f"TensorFlowModel({m.name}/{m.version}, signature={m.signature.key!r})"


def _tf_dtype(dtype: str) -> Any:
    import tensorflow as tf

    return tf.string if dtype == "string" else tf.as_dtype(dtype)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _same_io(a: Signature, b: Signature) -> bool:
    return (a.inputs, a.outputs) == (b.inputs, b.outputs)


def load(directory: Path, manifest: Manifest, *, warmup: bool = True) -> TensorFlowModel:
    """Load the SavedModel in `directory` and bind the manifest's serving signature.

    With `warmup`, one inference on zeros shaped like the signature runs before returning,
    so the first request pays no allocation or first-call cost.
    """
    import tensorflow as tf

    key = manifest.signature.key
    try:
        loaded = tf.saved_model.load(str(directory))
    except Exception as exc:  # TensorFlow raises many types; the user needs one line
        raise LoadError(
            f"TensorFlow could not load the SavedModel in {directory}: {_first_line(exc)}; "
            "check that the artifact was pushed from a SavedModel directory"
        ) from exc
    sigs = dict(loaded.signatures)
    if key not in sigs:
        raise LoadError(
            f"SavedModel {manifest.name}/{manifest.version} has no signature {key!r} "
            f"(it has {', '.join(sorted(sigs)) or 'none'}); re-push it or fix the manifest"
        )
    fn = sigs[key]
    actual = signature_of(key, fn)
    if not _same_io(actual, manifest.signature):
        raise LoadError(
            f"signature {key!r} of {manifest.name}/{manifest.version} does not match its "
            "manifest (inputs or outputs differ); re-push the artifact"
        )
    model = TensorFlowModel(loaded, fn, manifest, directory)
    if warmup:
        warm_up(model)
    return model
