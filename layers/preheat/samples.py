"""Sample SavedModels for the demo and the benchmarks: real architectures, random weights.

Weights are random (`weights=None`) and seeded, so the same kind and seed always give the
same model without any download. A model already built at `out` is reused.

Untrained, the image networks would answer every input alike: their fresh batch-norm
statistics (mean 0, variance 1) let activations fade layer after layer until the softmax is
uniform, and parity could not tell a correct strategy from a wrong one. So their batch-norm
statistics are set from one seeded batch of images like the bench's inputs, which keeps every
layer's activations near unit scale as a trained network's are, and they answer logits (no
final softmax). Architecture and size are Keras's own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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


# Images the batch-norm statistics are taken from: like the bench's inputs, pixels in [0, 1).
CALIBRATION_IMAGES = 8
# Changing how a kind is built changes this, so that models built before are rebuilt.
RECIPE = 2


def _calibrated(keras: Any, model: Any, seed: int) -> Any:
    """`model` with each batch-norm layer's moving statistics set to those it sees on one
    seeded batch of images (one training-mode pass with momentum 0; no weight changes)."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    shape = (CALIBRATION_IMAGES, *model.input_shape[1:])
    images = np.random.default_rng(seed).random(shape, dtype=np.float32)
    momentum = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, m in zip(norms, momentum, strict=True):
        layer.momentum = m
    return model


def _mobilenetv2(keras: Any) -> Any:
    return keras.applications.MobileNetV2(
        weights=None, input_shape=(224, 224, 3), classifier_activation=None
    )


def _resnet50(keras: Any) -> Any:
    return keras.applications.ResNet50(
        weights=None, input_shape=(224, 224, 3), classifier_activation=None
    )


# kind → (builder, approximate SavedModel size, what it is)
KINDS: dict[str, tuple[Callable[[Any], Any], str, str]] = {
    "dense": (_dense, "35 KB", "a tiny dense net, float32 (batch, 4) → (batch, 3)"),
    "mobilenetv2": (_mobilenetv2, "30 MB", "Keras MobileNetV2, 224x224x3 images, 1000 logits"),
    "resnet50": (_resnet50, "207 MB", "Keras ResNet50, 224x224x3 images, 1000 logits"),
}


def make_sample_model(kind: str, out: Path, seed: int = 0) -> Path:
    """Export the sample `kind` with random weights from `seed` as a SavedModel at `out`.

    Reuses `out` when it already holds the same kind and seed; otherwise builds into a
    sibling temporary directory and renames it into place, so `out` is never half-written.
    """
    if kind not in KINDS:
        raise ConfigurationError("sample model", kind, f"use one of {', '.join(KINDS)}")
    stamp = f"{kind} seed={seed} recipe={RECIPE}\n"
    marker = _marker(out)
    if marker.is_file() and marker.read_text() == stamp and (out / "saved_model.pb").is_file():
        return out

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.random.set_seed(seed)
    model = KINDS[kind][0](keras)
    if kind != "dense":
        model = _calibrated(keras, model, seed)
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
