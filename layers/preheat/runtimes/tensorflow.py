"""The TensorFlow runtime: describe a SavedModel's signatures (and, below, load and warm it).

TensorFlow is imported inside the functions, never at module import, so that
`import preheat` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from preheat.artifact.manifest import Signature, TensorSpec
from preheat.exceptions import UnsupportedModel

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
