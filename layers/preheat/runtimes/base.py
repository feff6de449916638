"""What every runtime's model offers: `predict` on dicts of named arrays, and its signature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from preheat.artifact.manifest import Manifest, Signature


@runtime_checkable
class Model(Protocol):
    """A loaded model, ready to answer (warm-up already done when enabled)."""

    @property
    def signature(self) -> Signature: ...

    @property
    def manifest(self) -> Manifest: ...

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs already validated and coerced (see runtimes.validate); outputs by name."""
        ...


def numpy_dtype(dtype: str) -> np.dtype[Any]:
    """The numpy dtype for a manifest dtype name ("string" is TensorFlow's tf.string)."""
    if dtype == "string":
        return np.dtype(object)
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"unknown dtype {dtype!r} in signature") from exc


def example_inputs(signature: Signature, batch: int = 1) -> dict[str, np.ndarray]:
    """Zeros of the right dtype for every input, dynamic dimensions set to `batch` (warm-up)."""
    out: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        shape = tuple(batch if d is None else d for d in (spec.shape or (batch,)))
        if spec.dtype == "string":
            out[spec.name] = np.full(shape, b"", dtype=object)
        else:
            out[spec.name] = np.zeros(shape, dtype=numpy_dtype(spec.dtype))
    return out
