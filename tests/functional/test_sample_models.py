"""The demo's sample model answers with variety, and LiteRT stays within the default tolerances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from preheat.tools import sample_models
from preheat.tools.sample_models import make_sample_model
from preheat.tools.slim import slim

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mobilenetv2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample_model("mobilenetv2", tmp_path_factory.mktemp("sample") / "mobilenetv2")


def _logits(model_dir: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    (out,) = serve(tf.constant(images)).values()
    return np.asarray(out.numpy())


def test_outputs_move_with_the_input(mobilenetv2: Path) -> None:
    # Pixel-like inputs, as the bench sends: multiples of 1/256 in [0, 1).
    rng = np.random.default_rng(7)
    images = (rng.integers(0, 256, size=(8, 224, 224, 3)) / 256).astype(np.float32)
    logits = _logits(mobilenetv2, images)
    assert logits.shape == (8, 1000)
    assert np.isfinite(logits).all()
    # Logits, not a softmax that random weights flatten to 1/1000 everywhere.
    assert not np.allclose(logits.sum(axis=1), 1.0, atol=1e-3)
    spread = logits.std(axis=0).mean() / np.abs(logits).mean()
    assert spread > 0.1, f"outputs barely depend on the input: spread {spread:.3g}"
    assert len(set(np.argmax(logits, axis=1).tolist())) >= 2


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_litert_meets_the_default_tolerance(
    mobilenetv2: Path, tmp_path: Path, precision: str
) -> None:
    # What the bench's LiteRT strategies do: without this the demo could not measure them.
    result = slim(mobilenetv2, tmp_path / precision, runtime="litert", precision=precision)
    parity = result.manifest.parity
    assert parity is not None
    assert parity["runtime"] == "litert"
    assert parity["max_rel_error"] > 0
    assert parity["top1_agreement"] is not None


def test_a_model_built_another_way_is_rebuilt(tmp_path: Path) -> None:
    out = tmp_path / "dense"
    make_sample_model("dense", out, seed=3)
    marker = out.parent / ".dense.sample"
    assert marker.read_text() == f"dense seed=3 {sample_models.BUILD}\n"
    built = (out / "saved_model.pb").stat().st_mtime_ns
    make_sample_model("dense", out, seed=3)
    assert (out / "saved_model.pb").stat().st_mtime_ns == built  # reused as it is
    marker.write_text("dense seed=3 an-older-build\n")
    make_sample_model("dense", out, seed=3)
    assert marker.read_text() == f"dense seed=3 {sample_models.BUILD}\n"
    assert (out / "saved_model.pb").stat().st_mtime_ns != built
