"""The demo's sample image model answers different inputs differently, so parity means something."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from preheat.bench import parity
from preheat.push import prepare
from preheat.samples import make_sample_model

pytestmark = pytest.mark.slow


def test_mobilenetv2_sample_gives_logits_that_depend_on_the_input(tmp_path: Path) -> None:
    import tensorflow as tf

    out = make_sample_model("mobilenetv2", tmp_path / "mobilenetv2", seed=0)
    signature = prepare(out, name="mobilenetv2", version="1").signature
    inputs = parity.request_inputs(signature, 3, seed=1)
    fn = tf.saved_model.load(str(out)).signatures["serving_default"]
    answers = [
        {k: v.numpy() for k, v in fn(**{n: tf.constant(a) for n, a in x.items()}).items()}
        for x in inputs
    ]
    assert not parity.constant_outputs(answers)
    (name,) = answers[0]
    logits = [a[name] for a in answers]
    assert logits[0].shape == (1, 1000)
    # Logits, not probabilities: no softmax, activations alive at the last layer.
    assert not np.allclose(logits[0].sum(), 1.0) and all(float(y.std()) > 0.05 for y in logits)
    assert float(np.max(np.abs(logits[0] - logits[1]))) > 1e-3
    # Reused as built: the same kind and seed give the same directory back untouched.
    before = (out / "saved_model.pb").stat().st_mtime_ns
    assert make_sample_model("mobilenetv2", out, seed=0) == out
    assert (out / "saved_model.pb").stat().st_mtime_ns == before
