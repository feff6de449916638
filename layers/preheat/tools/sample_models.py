"""Sample SavedModels for the demo and the benchmarks: real architectures, random weights.

Weights are random (`weights=None`) and seeded, so the same kind and seed always give the
same model without any download. A model already built at `out` is reused.

The image models are made to answer like a classifier would, with outputs that move with
the input, so that parity between strategies means something (see `_calibrate`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from preheat.exceptions import ConfigurationError

# Changing how a kind is built changes this, so that models built before are rebuilt.
BUILD = "calibrated-1"

# The residual branches' batch-norm scale: small enough that each residual block stays close
# to the identity (so rounding does not grow from block to block), large enough to matter.
RESIDUAL_GAIN = 0.2
# Images the batch-norm statistics are measured on: pixel-like values in [0, 1).
CALIBRATION_IMAGES = 16


def _marker(out: Path) -> Path:
    # Beside the SavedModel, not inside it: everything inside would be pushed with it.
    return out.parent / f".{out.name}.sample"


def _calibrate(keras: Any, model: Any, residual: Callable[[str], bool], seed: int) -> None:
    """Set every batch norm's statistics from a batch of pixel-like images.

    With Keras's fresh statistics (mean 0, variance 1) activations fade layer after layer and
    the model answers every input alike. Measured statistics keep each layer's activations at
    unit scale, as in a trained network. The residual branches' scale is set to
    RESIDUAL_GAIN first: at full scale every block amplifies small differences, and LiteRT
    fp16 and int8 then miss the slimmer's tolerances on a network no one trained. No final
    softmax: the logits are the outputs, where input-dependence shows.
    """
    import numpy as np

    norms = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    for layer in norms:
        # Momentum 0: one training-mode pass stores exactly the batch's statistics.
        layer.momentum = 0.0
        if residual(layer.name):
            gamma, *rest = layer.get_weights()
            layer.set_weights([np.full_like(gamma, RESIDUAL_GAIN), *rest])
    rng = np.random.default_rng(seed)
    images = rng.random((CALIBRATION_IMAGES, *model.input_shape[1:])).astype("float32")
    model(images, training=True)


def _dense(keras: Any, seed: int) -> Any:
    return keras.Sequential(
        [
            keras.Input(shape=(4,), dtype="float32", name="x"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3),
        ]
    )


def _mobilenetv2_residual(name: str) -> bool:
    # block_N_project_BN ends a residual branch in the blocks that add their input back.
    parts = name.split("_")
    return (
        name.startswith("block_")
        and name.endswith("project_BN")
        and int(parts[1]) in {2, 4, 5, 7, 8, 9, 11, 12, 14, 15}
    )


def _mobilenetv2(keras: Any, seed: int) -> Any:
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(224, 224, 3), classifier_activation=None
    )
    _calibrate(keras, model, _mobilenetv2_residual, seed)
    return model


def _resnet50(keras: Any, seed: int) -> Any:
    model = keras.applications.ResNet50(
        weights=None, input_shape=(224, 224, 3), classifier_activation=None
    )
    # convN_blockM_3_bn ends each bottleneck's residual branch (_0_bn is the shortcut's).
    _calibrate(keras, model, lambda name: name.endswith("_3_bn"), seed)
    return model


# kind → (builder, approximate SavedModel size, what it is)
KINDS: dict[str, tuple[Callable[[Any, int], Any], str, str]] = {
    "dense": (_dense, "35 KB", "a tiny dense net, float32 (batch, 4) → (batch, 3)"),
    "mobilenetv2": (
        _mobilenetv2,
        "30 MB",
        "Keras MobileNetV2, 224x224x3 images, 1000 class logits",
    ),
    "resnet50": (_resnet50, "207 MB", "Keras ResNet50, 224x224x3 images, 1000 class logits"),
}


def make_sample_model(kind: str, out: Path, seed: int = 0) -> Path:
    """Export the sample `kind` with random weights from `seed` as a SavedModel at `out`.

    Reuses `out` when it already holds the same kind and seed; otherwise builds into a
    sibling temporary directory and renames it into place, so `out` is never half-written.
    """
    if kind not in KINDS:
        raise ConfigurationError("sample model", kind, f"use one of {', '.join(KINDS)}")
    stamp = f"{kind} seed={seed} {BUILD}\n"
    marker = _marker(out)
    if marker.is_file() and marker.read_text() == stamp and (out / "saved_model.pb").is_file():
        return out

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.random.set_seed(seed)
    model = KINDS[kind][0](keras, seed)
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
