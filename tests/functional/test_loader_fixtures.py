"""The shared model fixtures build real SavedModels whose signatures match what they claim."""

from __future__ import annotations

import numpy as np

from tests.fixtures.models import VOCAB, BuiltModel


def test_dense_model_signature_and_reference(dense_model: BuiltModel) -> None:
    sig = dense_model.signature
    assert sig.key == "serving_default"
    assert [(t.dtype, t.shape) for t in sig.inputs] == [("float32", (None, 4))]
    assert [(t.dtype, t.shape) for t in sig.outputs] == [("float32", (None, 3))]
    x = np.arange(8, dtype="float32").reshape(2, 4)
    out = dense_model.reference({sig.inputs[0].name: x})
    assert out[sig.outputs[0].name].shape == (2, 3)


def test_two_io_model_has_two_named_inputs_and_outputs(two_io_model: BuiltModel) -> None:
    sig = two_io_model.signature
    assert {t.name: t.dtype for t in sig.inputs} == {"features": "float32", "ids": "int32"}
    assert {t.name for t in sig.outputs} == {"scores", "total"}
    out = two_io_model.reference(
        {"features": np.ones((3, 4), "float32"), "ids": np.array([0, 1, 2], "int32")}
    )
    np.testing.assert_allclose(out["total"], out["scores"].sum(axis=1), rtol=1e-5)


def test_cnn_model_outputs_probabilities(cnn_model: BuiltModel) -> None:
    (spec,) = cnn_model.signature.inputs
    assert spec.shape == (None, 32, 32, 3)
    out = cnn_model.reference(
        {spec.name: np.random.default_rng(0).random((2, 32, 32, 3), "float32")}
    )
    (probs,) = out.values()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_two_signature_model_keeps_both(two_signature_model: BuiltModel) -> None:
    assert two_signature_model.signature.key == "serving_default"
    assert [s.key for s in two_signature_model.others] == ["embed"]
    x = np.array([[1, 2, 3]], "float32")
    np.testing.assert_allclose(two_signature_model.reference({"x": x})["y"], [[3, 5, 7]])
    np.testing.assert_allclose(two_signature_model.reference({"x": x}, "embed")["sum"], [6])


def test_string_vocab_model_reads_its_asset(string_vocab_model: BuiltModel) -> None:
    (spec,) = string_vocab_model.signature.inputs
    assert spec.dtype == "string"
    assert any(f.path.startswith("assets/") for f in string_vocab_model.manifest().files)
    words = np.array([VOCAB[2].encode(), b"zzz"], dtype=object)
    ids = string_vocab_model.reference({spec.name: words})["ids"]
    assert ids.tolist() == [2, len(VOCAB)]
