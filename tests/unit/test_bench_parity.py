"""The benchmark's inputs and its parity figures."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from preheat.artifact.manifest import Signature, TensorSpec
from preheat.tools.bench.parity import (
    compare,
    constant_outputs,
    from_json,
    request_inputs,
    to_json,
    variety,
)

SIG = Signature(
    "serving_default",
    (TensorSpec("image", "float32", (None, 2, 2)), TensorSpec("ids", "int64", (None, None))),
    (TensorSpec("probs", "float32", (None, 3)),),
)


def test_inputs_are_seeded_single_rows_that_survive_json_exactly() -> None:
    a, b = request_inputs(SIG, 2, seed=7), request_inputs(SIG, 2, seed=7)
    assert all(np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)
    assert a[0]["image"].shape == (1, 2, 2) and a[0]["ids"].shape == (1, 8)
    assert not np.array_equal(a[0]["image"], a[1]["image"])
    sent = orjson.loads(orjson.dumps(to_json(a[0])))
    assert np.array_equal(np.asarray(sent["image"], dtype=np.float32), a[0]["image"])


def test_identical_outputs_are_exact_and_differences_are_measured() -> None:
    ref = [{"probs": np.array([[0.1, 0.7, 0.2]], dtype=np.float32)}]
    same = [from_json({"probs": ref[0]["probs"].tolist()}, ref[0])]
    p = compare(ref, same)
    assert p.bit_identical and p.max_abs_error == 0 and p.top1_agreement == 1.0
    off = [{"probs": np.array([[0.1, 0.3, 0.6]], dtype=np.float32)}]
    q = compare(ref, off)
    assert not q.bit_identical and q.top1_agreement == 0.0
    diff = np.abs(ref[0]["probs"].astype(np.float64) - off[0]["probs"].astype(np.float64))
    assert q.max_abs_error == diff.max()
    assert q.max_rel_error == diff.max() / float(np.float32(0.7))


def test_constant_outputs_are_detected() -> None:
    uniform = [{"probs": np.full((1, 3), 1 / 3, dtype=np.float32)}]
    assert constant_outputs(uniform)
    assert not constant_outputs([{"probs": np.array([[0.1, 0.7, 0.2]], dtype=np.float32)}])


def test_variety_measures_how_far_answers_move() -> None:
    same = [{"logits": np.array([[1.0, 2.0, 3.0]], dtype=np.float32)} for _ in range(4)]
    v = variety(same)
    assert v == {"requests": 4, "spread": 0.0, "top1_classes": 1}
    moving = [
        {"logits": np.array([[1.0, 2.0, 3.0]], dtype=np.float32)},
        {"logits": np.array([[3.0, 2.0, 1.0]], dtype=np.float32)},
    ]
    v = variety(moving)
    assert v is not None and v["top1_classes"] == 2
    # std across the two requests per element: 1, 0, 1; mean 2/3 over a mean size of 2.
    assert v["spread"] == pytest.approx((2 / 3) / 2)
    # No class axis: spread only; fewer than two requests: nothing to say.
    flat = variety([{"y": np.array([1.0])}, {"y": np.array([3.0])}])
    assert flat == {"requests": 2, "spread": 0.5, "top1_classes": None}
    assert variety(same[:1]) is None
    assert variety([{"s": np.array([b"a"], dtype=object)}] * 2) is None
