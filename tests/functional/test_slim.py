"""`preheat slim` on real SavedModels: exact re-save, LiteRT conversion, auto, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preheat.artifact import manifest as mf
from preheat.exceptions import (
    ConfigurationError,
    ToleranceExceeded,
    UnsafePathError,
    UnsupportedModel,
)
from preheat.runtimes import litert
from preheat.tools.cli import main
from preheat.tools.slim import DEFAULT_MAX_REL_ERROR, slim
from preheat.tools.slim import inputs as sampling

MODELS = ["dense_model", "cnn_model", "two_io_model", "two_signature_model", "string_vocab_model"]
LITERT_MODELS = ["dense_model", "cnn_model", "two_io_model", "two_signature_model"]


def _fresh_inputs(model: Any, seed: int = 99) -> dict[str, np.ndarray]:
    # Different inputs from the slimmer's own samples, so the check is independent of them.
    return sampling.generate(model.signature, 6, seed=seed, vocab=["apple", "cherry"])[0]


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("fixture", MODELS)
def test_exact_is_bit_identical_and_loads_on_its_own(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import tensorflow as tf

    model = request.getfixturevalue(fixture)
    result = slim(model.path, tmp_path / "out", runtime="tensorflow")
    assert result.report["bit_identical"] is True
    assert result.manifest.runtime == "tensorflow" and result.manifest.precision == "exact"
    assert result.manifest.signature == model.signature
    assert result.manifest.signatures == model.others
    assert mf.verify_dir(result.out, mf.read(result.out)) == []
    loaded = tf.saved_model.load(str(result.out))
    for sig in (model.signature, *model.others):
        inputs = sampling.generate(sig, 6, seed=7, vocab=["apple", "cherry"])[0]
        got = loaded.signatures[sig.key](**{k: tf.constant(v) for k, v in inputs.items()})
        want = model.reference(inputs, sig.key)
        assert set(got) == set(want)
        for name, value in want.items():
            assert np.array_equal(got[name].numpy(), value), f"{sig.key}/{name}"


def test_exact_stores_each_variable_once(cnn_model: Any, tmp_path: Path) -> None:
    import tensorflow as tf

    def stored(path: Path) -> list[str]:
        names = [n for n, _ in tf.train.list_variables(str(path / "variables" / "variables"))]
        return [n for n in names if "OBJECT_GRAPH" not in n]

    result = slim(cnn_model.path, tmp_path / "out", runtime="tensorflow")
    kept = result.report["kept"]["variables"]
    source = tf.saved_model.load(str(cnn_model.path))
    weights = source.signatures["serving_default"].variables
    assert len(stored(result.out)) == kept == len(weights)
    # A Keras 3 export tracks every weight under two lists: the source stores more.
    assert len(stored(cnn_model.path)) > kept


def test_exact_keeps_the_vocabulary_asset(string_vocab_model: Any, tmp_path: Path) -> None:
    result = slim(string_vocab_model.path, tmp_path / "out", runtime="tensorflow")
    assets = list((result.out / "assets").iterdir())
    assert len(assets) == 1 and "banana" in assets[0].read_text()
    assert result.report["kept"]["tables"] == 1
    assert any(f.path.startswith("assets/") for f in result.manifest.files)
    # The samples drew on the model's own vocabulary.
    assert "vocabulary words" in result.report["sample_inputs"]


@pytest.mark.parametrize("fixture", LITERT_MODELS)
def test_litert_is_within_tolerance_with_the_shipped_interpreter(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model = request.getfixturevalue(fixture)
    result = slim(model.path, tmp_path / "out", runtime="litert", precision="fp16")
    report = result.report
    assert result.manifest.runtime == "litert" and result.manifest.precision == "fp16"
    assert report["max_rel_error"] <= DEFAULT_MAX_REL_ERROR["fp16"]
    assert [f.path for f in result.manifest.files] == ["model.tflite"]
    served = litert.load(result.out, mf.read(result.out))
    inputs = _fresh_inputs(model)
    got = served.predict(inputs)
    want = model.reference(inputs)
    assert set(got) == set(want)
    for name, value in want.items():
        peak = float(np.max(np.abs(value))) or 1.0
        assert float(np.max(np.abs(got[name] - value))) / peak <= DEFAULT_MAX_REL_ERROR["fp16"]


def test_litert_precisions_shrink_and_are_recorded(cnn_model: Any, tmp_path: Path) -> None:
    sizes = {}
    for precision in ("fp32", "fp16", "int8"):
        result = slim(cnn_model.path, tmp_path / precision, runtime="litert", precision=precision)
        assert result.manifest.precision == precision
        assert result.report["tolerance"]["max_rel_error"] == DEFAULT_MAX_REL_ERROR[precision]
        assert result.report["top1_agreement"] is not None
        sizes[precision] = (result.out / "model.tflite").stat().st_size
    assert sizes["fp16"] < sizes["fp32"]
    assert sizes["int8"] < sizes["fp32"]


def test_auto_keeps_tensorflow_for_strings_and_says_why(
    string_vocab_model: Any, tmp_path: Path
) -> None:
    result = slim(string_vocab_model.path, tmp_path / "out", runtime="auto")
    assert result.manifest.runtime == "tensorflow"
    assert result.report["runtime"] == "tensorflow"
    assert "string" in result.report["reason"] and "kept TensorFlow" in result.report["reason"]
    assert result.report["requested"] == {"runtime": "auto", "precision": "fp16"}
    assert result.report["bit_identical"] is True


def test_auto_picks_litert_when_it_fits(dense_model: Any, tmp_path: Path) -> None:
    result = slim(dense_model.path, tmp_path / "out")
    assert result.manifest.runtime == "litert"
    assert "within the tolerance" in result.report["reason"]


def test_auto_falls_back_when_the_tolerance_is_missed(cnn_model: Any, tmp_path: Path) -> None:
    result = slim(cnn_model.path, tmp_path / "out", runtime="auto", max_abs_error=0.0)
    assert result.manifest.runtime == "tensorflow"
    assert "misses the tolerance" in result.report["reason"]
    assert not (result.out / "model.tflite").exists()


def test_litert_over_tolerance_writes_nothing(cnn_model: Any, tmp_path: Path) -> None:
    with pytest.raises(ToleranceExceeded, match="max absolute error"):
        slim(cnn_model.path, tmp_path / "out", runtime="litert", max_abs_error=0.0)
    assert not (tmp_path / "out").exists()
    assert _leftovers(tmp_path) == []


def test_user_sample_inputs_feed_the_parity_check(two_io_model: Any, tmp_path: Path) -> None:
    path = tmp_path / "real.npz"
    np.savez(
        path,
        features=np.linspace(0, 1, 40, dtype=np.float32).reshape(10, 4),
        ids=np.arange(10, dtype=np.int32),
    )
    result = slim(two_io_model.path, tmp_path / "out", runtime="tensorflow", sample_inputs=path)
    assert result.report["samples"] == 10 and result.report["sample_inputs"] == "file real.npz"
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.ones((3, 4), np.float32))
    with pytest.raises(ConfigurationError, match="do not match the inputs"):
        slim(two_io_model.path, tmp_path / "out2", runtime="tensorflow", sample_inputs=bad)
    assert not (tmp_path / "out2").exists()


def test_bad_sources_are_refused_in_one_line(tmp_path: Path) -> None:
    import tensorflow as tf

    not_model = tmp_path / "not-a-model"
    not_model.mkdir()
    (not_model / "weights.h5").write_bytes(b"x")
    with pytest.raises(UnsupportedModel, match="not a SavedModel"):
        slim(not_model, tmp_path / "o1")
    with pytest.raises(UnsupportedModel, match="not a directory"):
        slim(tmp_path / "absent", tmp_path / "o2")
    bare = tf.Module()
    bare.v = tf.Variable(1.0)
    tf.saved_model.save(bare, str(tmp_path / "bare"))
    with pytest.raises(UnsupportedModel, match="no serving signature"):
        slim(tmp_path / "bare", tmp_path / "o3")
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3"))
    assert _leftovers(tmp_path) == []


def test_a_symlink_out_of_the_source_is_refused(dense_model: Any, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(dense_model.path, src)
    (src / "assets" / "secret").symlink_to("/etc/hostname")
    with pytest.raises(UnsafePathError, match="symlinks"):
        slim(src, tmp_path / "out", runtime="tensorflow")
    assert not (tmp_path / "out").exists()


def test_a_non_empty_out_is_kept_unless_forced(dense_model: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigurationError, match="--force"):
        slim(dense_model.path, out, runtime="tensorflow")
    assert (out / "mine.txt").read_text() == "keep me"
    slim(dense_model.path, out, runtime="tensorflow", force=True)
    assert not (out / "mine.txt").exists() and (out / "manifest.json").is_file()
    with pytest.raises(ConfigurationError, match="outside SRC"):
        slim(dense_model.path, dense_model.path / "inner", runtime="tensorflow")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"runtime": "onnx"}, "runtime"),
        ({"precision": "fp64"}, "precision"),
        ({"runtime": "litert", "precision": "exact"}, "precision"),
        ({"runtime": "tensorflow", "precision": "fp16"}, "precision"),
        ({"name": "../up"}, "name"),
        ({"max_rel_error": float("nan")}, "max-rel-error"),
        ({"runtime": "tensorflow", "max_abs_error": 0.1}, "max-abs-error"),
    ],
)
def test_bad_options_are_refused_before_any_work(
    dense_model: Any, tmp_path: Path, kwargs: dict[str, Any], name: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        slim(dense_model.path, tmp_path / "out", **kwargs)
    assert info.value.name == name
    assert not (tmp_path / "out").exists()


def test_cli_prints_json_and_one_line_errors(
    dense_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["slim", str(dense_model.path), str(out), "--runtime", "litert", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    data = json.loads(captured.out)
    assert data["runtime"] == "litert" and data["parity"]["samples"] == 16
    for argv in (
        ["slim", str(dense_model.path), str(tmp_path / "o"), "--max-rel-error", "abc"],
        ["slim", str(dense_model.path), str(tmp_path / "o"), "--samples", "0"],
        ["slim", str(dense_model.path), str(out)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("preheat slim: error:") and "\n" not in err
    assert not (tmp_path / "o").exists()
    assert os.listdir(out) != []


def _with_training_state(out: Path) -> Path:
    """A SavedModel that also carries optimizer-like slots and a training function."""
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(tf.reshape(tf.range(12, dtype=tf.float32), (4, 3)) / 10.0)
    module.slot_m = tf.Variable(tf.zeros((256, 256)))  # what Adam would keep per weight
    module.slot_v = tf.Variable(tf.ones((256, 256)))
    spec = [tf.TensorSpec((None, 4), tf.float32, name="x")]

    def serve(x: Any) -> dict[str, Any]:
        return {"y": tf.matmul(x, module.w)}

    def train_step(x: Any) -> Any:
        module.slot_m.assign_add(tf.reduce_mean(x) * tf.ones((256, 256)))
        return module.slot_v.assign(module.slot_m * 2.0)

    module.serve = tf.function(serve, input_signature=spec)
    module.train_step = tf.function(train_step, input_signature=spec)
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    return out


def test_exact_drops_optimizer_slots_and_training_functions(tmp_path: Path) -> None:
    import tensorflow as tf

    src = _with_training_state(tmp_path / "trained")
    result = slim(src, tmp_path / "out", runtime="tensorflow")
    assert result.report["bit_identical"] and result.report["kept"]["variables"] == 1
    names = [n for n, _ in tf.train.list_variables(str(result.out / "variables" / "variables"))]
    assert [n for n in names if "OBJECT_GRAPH" not in n and "ATTRIBUTES" in n] != []
    assert len([n for n in names if "VARIABLE_VALUE" in n]) == 1
    assert result.report["artifact_bytes"] < result.report["source_bytes"] / 4
    loaded = tf.saved_model.load(str(result.out))
    assert not hasattr(loaded, "train_step")
    assert list(loaded.signatures) == ["serving_default"]
