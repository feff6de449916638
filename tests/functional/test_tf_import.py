"""The lean TensorFlow import answers bit for bit what the full import answers, on every model.

Each side runs in a fresh process pinned to the same single core (oneDNN's float results
depend on the thread count), loads every test model through preheat's runtime, and returns
its outputs; the two sets must be equal in value and dtype. The lean side also shows what it
did not import: Keras and the public API tree.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preheat.cache import memory
from preheat.exceptions import ConfigurationError
from preheat.loader import load_model
from preheat.settings import Settings
from tests.fixtures.models import VOCAB, BuiltModel

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("tf_import_child.py")
RNG = np.random.default_rng(2024)


def _inputs(kind: str) -> dict[str, dict[str, np.ndarray]]:
    """Sample inputs by signature key; a few rows with awkward values where they matter."""
    if kind == "dense":
        return {"serving_default": {"x": RNG.standard_normal((5, 4)).astype("float32")}}
    if kind == "cnn":
        return {"serving_default": {"image": RNG.random((3, 32, 32, 3), dtype="float32")}}
    if kind == "two_io":
        features = RNG.standard_normal((4, 4)).astype("float32")
        return {"serving_default": {"features": features, "ids": np.array([0, 3, 9, 42], "int32")}}
    if kind == "two_signature":
        x = RNG.standard_normal((3, 3)).astype("float32")
        return {"serving_default": {"x": x}, "embed": {"x": x}}
    if kind == "string_vocab":
        words = np.array([w.encode() for w in (*VOCAB, "", "zz", "Apple")], dtype=object)
        return {"serving_default": {"words": words}}
    if kind == "int64_lookup":
        ids = np.array([0, 3, 4, -1, 2**40 + 3, 2**62], dtype="int64")
        return {"serving_default": {"ids": ids}}
    raise AssertionError(kind)


def _run_child(jobs: dict[str, Any], tmp: Path, tag: str, core: int, **env: str) -> dict[str, Any]:
    jobs_file, out_file = tmp / f"{tag}-jobs.pkl", tmp / f"{tag}-out.pkl"
    jobs_file.write_bytes(pickle.dumps(jobs))
    child_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    proc = subprocess.run(
        [sys.executable, str(CHILD), str(core), str(jobs_file), str(out_file)],
        env=child_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = pickle.loads(out_file.read_bytes())
    return result


@pytest.fixture(scope="module")
def all_models(
    dense_model: BuiltModel,
    two_io_model: BuiltModel,
    cnn_model: BuiltModel,
    two_signature_model: BuiltModel,
    string_vocab_model: BuiltModel,
    int64_lookup_model: BuiltModel,
) -> dict[str, BuiltModel]:
    return {
        "dense": dense_model,
        "two_io": two_io_model,
        "cnn": cnn_model,
        "two_signature": two_signature_model,
        "string_vocab": string_vocab_model,
        "int64_lookup": int64_lookup_model,
    }


@pytest.fixture(scope="module")
def both_paths(
    all_models: dict[str, BuiltModel], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("tf-import")
    jobs: dict[str, Any] = {"models": {}}
    for kind, model in all_models.items():
        art = model.as_artifact(tmp / kind, name=kind)
        jobs["models"][kind] = {"directory": str(art), "inputs": _inputs(kind)}
    core = min(os.sched_getaffinity(0))
    lean = _run_child(
        {**jobs, "read_public_name": True}, tmp, "lean", core, PREHEAT_TF_IMPORT="lean"
    )
    full = _run_child(jobs, tmp, "full", core, PREHEAT_TF_IMPORT="full")
    return lean, full


def test_every_model_answers_bit_identically_lean_and_full(
    both_paths: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    lean, full = both_paths
    assert lean["errors"] == {} and full["errors"] == {}
    assert set(lean["outputs"]) == set(full["outputs"])
    assert len(lean["outputs"]) == 7  # six models, one of them with two signatures
    for key, want in full["outputs"].items():
        got = lean["outputs"][key]
        assert set(got) == set(want), key
        for name in want:
            assert got[name].dtype == want[name].dtype, (key, name)
            assert got[name].shape == want[name].shape, (key, name)
            assert np.array_equal(got[name], want[name]), (key, name)


def test_the_fixtures_exercise_strings_int64_and_assets(
    both_paths: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    lean, _ = both_paths
    words = lean["outputs"]["int64_lookup/serving_default"]["word"]
    assert words.tolist() == [b"apple", b"date", b"<unknown>", b"<unknown>", *[b"<unknown>"] * 2]
    assert lean["outputs"]["int64_lookup/serving_default"]["next"].dtype == np.int64
    ids = lean["outputs"]["string_vocab/serving_default"]["ids"]
    assert ids.tolist()[: len(VOCAB)] == list(range(len(VOCAB)))


def test_the_lean_path_imports_neither_keras_nor_the_api_tree(
    both_paths: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    # The dense and cnn fixtures are Keras 3 exports (model.export), and keras is installed.
    lean, full = both_paths
    assert lean["import"]["tf_import"] == "lean"
    assert lean["import"]["runtime_import_s"] > 0
    assert lean["keras_imported"] is False
    assert lean["api_tree_imported"] is False
    assert full["import"]["tf_import"] == "full"
    assert "PREHEAT_TF_IMPORT=full" in full["import"]["tf_import_reason"]
    assert full["api_tree_imported"] is True


def test_reading_a_public_name_after_a_lean_import_completes_it(
    both_paths: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    lean, _ = both_paths
    assert lean["public_constant"] == [1, 2]
    assert lean["version"]
    path, reason = lean["after_public_name"]
    assert path == "full" and "tensorflow.constant" in reason


# ---------------------------------------------------------------- fallback and settings


def _build_needs_keras(out: Path) -> Path:
    """A SavedModel holding an object saved as an "optimizer": TensorFlow imports Keras for it.

    Keras 2 SavedModels from `model.save` carry their optimizer this way.
    """
    import tensorflow as tf

    class OptimizerLike(tf.Module):  # type: ignore[misc]
        @property
        def _object_identifier(self) -> str:
            return "optimizer"

    module = tf.Module()
    module.optimizer = OptimizerLike()
    module.optimizer.step = tf.Variable(0, dtype=tf.int64)
    module.w = tf.Variable(2.0)
    module.serve = tf.function(
        lambda x: {"y": x * module.w}, input_signature=[tf.TensorSpec((None,), tf.float32, "x")]
    )
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    return out


def test_a_model_that_needs_missing_keras_fails_naming_the_fix(
    tmp_path: Path, dense_model: BuiltModel
) -> None:
    from tests.fixtures.models import _describe

    built = _describe(_build_needs_keras(tmp_path / "needs_keras_src"))
    art = built.as_artifact(tmp_path / "needs_keras", name="needs_keras")
    # Keras is blocked before anything imports it: as in an image built without it.
    script = (
        "import sys\n"
        "sys.modules['keras'] = None; sys.modules['tf_keras'] = None\n"
        "from pathlib import Path\n"
        "from preheat.artifact import manifest\n"
        "from preheat.exceptions import LoadError\n"
        "from preheat.runtimes import imports, load\n"
        "d = Path(sys.argv[1])\n"
        "try:\n"
        "    load(d, manifest.read(d))\n"
        "except LoadError as exc:\n"
        "    print(exc)\n"
        "print(imports.current('tensorflow').report())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(art)],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    message, report = proc.stdout.strip().splitlines()[-2:]
    assert "needs_keras/1 needs Keras" in message
    assert "--build-arg WITH_KERAS=true" in message and "pip install keras" in message
    # The lean load failed first; the full import was tried before giving up.
    assert "'tf_import': 'full'" in report and "fell back from lean" in report
    # The fallback is logged once, at a level Lambda shows by default.
    fallbacks = [ln for ln in proc.stderr.splitlines() if "instead of lean" in ln]
    assert len(fallbacks) == 1, proc.stderr[-2000:]


def test_an_already_imported_tensorflow_is_used_as_it_is(
    dense_model: BuiltModel, tmp_path: Path
) -> None:
    # The test process imported TensorFlow in full to build its models.
    memory.clear()
    art = dense_model.as_artifact(tmp_path / "dense", name="dense")
    model = load_model(str(art), cache_dir=tmp_path / "cache", local_paths=(), prefetch=False)
    report = model.init_report  # type: ignore[attr-defined]
    memory.clear()
    assert report["tf_import"] == "full"
    assert report["tf_import_reason"] in (
        "tensorflow was already imported in full by this process",
        "PREHEAT_TF_IMPORT=full",
    )
    assert report["runtime_import_s"] >= 0


def test_the_setting_reads_lean_or_full_and_refuses_anything_else() -> None:
    assert Settings.from_env({}).tf_import == "lean"
    assert Settings.from_env({"PREHEAT_TF_IMPORT": " Full "}).tf_import == "full"
    with pytest.raises(ConfigurationError) as err:
        Settings.from_env({"PREHEAT_TF_IMPORT": "fast"})
    message = str(err.value)
    assert message == "PREHEAT_TF_IMPORT='fast' is not valid: use one of lean, full"
    assert "\n" not in message
    with pytest.raises(ConfigurationError, match="tf_import='fast' is not valid"):
        Settings(tf_import="fast")  # type: ignore[arg-type]
