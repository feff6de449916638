"""What every runtime's model offers: `predict` on dicts of named arrays, and its signature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

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
