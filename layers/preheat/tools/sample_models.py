"""Sample SavedModels for the demo and the benchmarks: real architectures, random weights.

Weights are random (`weights=None`) and seeded, so the same kind and seed always give the
same model without any download. A model already built at `out` is reused.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from preheat.exceptions import ConfigurationError


def _marker(out: Path) -> Path:
    # Beside the SavedModel, not inside it: everything inside would be pushed with it.
    return out.parent / f".{out.name}.sample"


def _dense(keras: Any) -> Any:
    return keras.Sequential(
        [
            keras.Input(shape=(4,), dtype="float32", name="x"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3),
        ]
    )


def _mobilenetv2(keras: Any) -> Any:
    return keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))


def _resnet50(keras: Any) -> Any:
    return keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))


# kind → (builder, approximate SavedModel size, what it is)
KINDS: dict[str, tuple[Callable[[Any], Any], str, str]] = {
    "dense": (_dense, "35 KB", "a tiny dense net, float32 (batch, 4) → (batch, 3)"),
    "mobilenetv2": (_mobilenetv2, "30 MB", "Keras MobileNetV2, 224x224x3 images, 1000 classes"),
    "resnet50": (_resnet50, "207 MB", "Keras ResNet50, 224x224x3 images, 1000 classes"),
}


def make_sample_model(kind: str, out: Path, seed: int = 0) -> Path:
    """Export the sample `kind` with random weights from `seed` as a SavedModel at `out`.

    Reuses `out` when it already holds the same kind and seed; otherwise builds into a
    sibling temporary directory and renames it into place, so `out` is never half-written.
    """
    if kind not in KINDS:
        raise ConfigurationError("sample model", kind, f"use one of {', '.join(KINDS)}")
    stamp = f"{kind} seed={seed}\n"
    marker = _marker(out)
    if marker.is_file() and marker.read_text() == stamp and (out / "saved_model.pb").is_file():
        return out

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.random.set_seed(seed)
    model = KINDS[kind][0](keras)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.export(str(tmp), verbose=False)
        marker.unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text(stamp)
    return out
