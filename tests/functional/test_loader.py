"""load_model on real SavedModels: the serving signature, warm-up, memory tier, init report."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preheat.artifact.manifest import Manifest
from preheat.cache import memory
from preheat.exceptions import ConfigurationError, LoadError
from preheat.loader import load_model
from preheat.runtimes import load as runtime_load
from preheat.runtimes.base import Model
from preheat.runtimes.tensorflow import TensorFlowModel
from tests.fixtures.models import VOCAB, BuiltModel


@pytest.fixture(autouse=True)
def _empty_memory_tier() -> Iterator[None]:
    memory.clear()
    yield
    memory.clear()


def _settings(tmp_path: Path) -> dict[str, Any]:
    # No read-only local paths and a private disk tier: only the URI given can serve.
    return {"cache_dir": tmp_path / "cache", "local_paths": (), "prefetch": False}


def test_dense_model_predicts_what_tensorflow_computes(
    dense_model: BuiltModel, tmp_path: Path
) -> None:
    art = dense_model.as_artifact(tmp_path / "dense", name="dense", version="1")
    model = load_model(str(art), **_settings(tmp_path))
    assert isinstance(model, Model)
    (spec,) = model.signature.inputs
    x = np.random.default_rng(7).standard_normal((5, 4)).astype("float32")
    got = model.predict({spec.name: x})
    want = dense_model.reference({spec.name: x})
    assert set(got) == set(want)
    for name in want:
        assert isinstance(got[name], np.ndarray)
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6)


def test_init_report_records_tier_and_phases(dense_model: BuiltModel, tmp_path: Path) -> None:
    art = dense_model.as_artifact(tmp_path / "dense", name="dense", version="3")
    model = load_model(str(art), **_settings(tmp_path))
    report = model.init_report  # type: ignore[attr-defined]
    assert report["tier"] == "local"
    assert (report["name"], report["version"], report["runtime"]) == ("dense", "3", "tensorflow")
    assert report["stale"] is False and report["prefetched"] is False
    for phase in ("fetch_s", "fetch_wait_s", "load_s", "warmup_s", "total_s"):
        assert report[phase] >= 0
    assert report["total_s"] >= report["load_s"]
    # The runtime import is timed on its own, whoever started it, with the path it took.
    assert report["runtime_import_s"] >= 0
    assert report["tf_import"] in ("lean", "full")


def test_second_load_is_served_from_memory(dense_model: BuiltModel, tmp_path: Path) -> None:
    art = dense_model.as_artifact(tmp_path / "dense", name="dense", version="1")
    first = load_model(str(art), **_settings(tmp_path))
    assert load_model(str(art), **_settings(tmp_path)) is first


def test_two_inputs_and_outputs_by_name(two_io_model: BuiltModel, tmp_path: Path) -> None:
    art = two_io_model.as_artifact(tmp_path / "two_io")
    model = load_model(str(art), **_settings(tmp_path))
    inputs = {
        "features": np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4),
        "ids": np.array([0, 4, 9], dtype="int32"),
    }
    got = model.predict(inputs)
    want = two_io_model.reference(inputs)
    assert set(got) == {"scores", "total"}
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6)


def test_cnn_matches_reference(cnn_model: BuiltModel, tmp_path: Path) -> None:
    art = cnn_model.as_artifact(tmp_path / "cnn")
    model = load_model(str(art), **_settings(tmp_path))
    (spec,) = model.signature.inputs
    x = np.random.default_rng(3).random((2, 32, 32, 3), dtype="float32")
    (name,) = model.signature.outputs
    np.testing.assert_allclose(
        model.predict({spec.name: x})[name.name],
        cnn_model.reference({spec.name: x})[name.name],
        rtol=1e-5,
        atol=1e-6,
    )


def test_the_manifest_chooses_the_signature(
    two_signature_model: BuiltModel, tmp_path: Path
) -> None:
    art = two_signature_model.as_artifact(tmp_path / "two_sig")
    manifest: Manifest = two_signature_model.manifest()
    x = np.array([[1, 2, 3]], "float32")
    serving = runtime_load(art, manifest)
    np.testing.assert_allclose(serving.predict({"x": x})["y"], [[3, 5, 7]])
    embed = runtime_load(art, manifest.with_(signature=two_signature_model.others[0]))
    np.testing.assert_allclose(embed.predict({"x": x})["sum"], [6])


def test_a_signature_the_model_lacks_is_a_load_error(
    two_signature_model: BuiltModel, tmp_path: Path
) -> None:
    manifest = two_signature_model.manifest()
    bogus = manifest.with_(signature=manifest.signature.__class__("missing", (), ()))
    with pytest.raises(
        LoadError, match=r"no signature 'missing' \(it has embed, serving_default\)"
    ) as err:
        runtime_load(two_signature_model.path, bogus)
    assert (err.value.runtime, err.value.stage) == ("tensorflow", "signature")


def test_string_model_reads_its_vocabulary_from_the_copied_asset(
    string_vocab_model: BuiltModel, tmp_path: Path
) -> None:
    art = string_vocab_model.as_artifact(tmp_path / "vocab")
    model = load_model(str(art), **_settings(tmp_path))
    words = np.array([w.encode() for w in (VOCAB[1], "unknown", VOCAB[0])], dtype=object)
    assert model.predict({"words": words})["ids"].tolist() == [1, len(VOCAB), 0]


def test_warmup_runs_unless_disabled(dense_model: BuiltModel, tmp_path: Path) -> None:
    art = dense_model.as_artifact(tmp_path / "dense")
    calls: list[int] = []
    model = runtime_load(art, dense_model.manifest(), warmup=False)
    assert isinstance(model, TensorFlowModel)
    original = model._fn

    def counting(**kw: object) -> object:
        calls.append(1)
        return original(**kw)

    model._fn = counting
    from preheat.runtimes import warm_up

    warm_up(model)
    assert calls == [1]
    memory.clear()
    cold = load_model(str(art), warmup=False, **_settings(tmp_path))
    assert cold.init_report["warmup_s"] == 0  # type: ignore[attr-defined]


def test_a_broken_saved_model_is_a_load_error(dense_model: BuiltModel, tmp_path: Path) -> None:
    art = dense_model.as_artifact(tmp_path / "dense")
    (art / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(LoadError, match="could not load the SavedModel"):
        runtime_load(art, dense_model.manifest())


def test_no_uri_anywhere_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREHEAT_MODEL_URI", raising=False)
    with pytest.raises(ConfigurationError, match="PREHEAT_MODEL_URI"):
        load_model(**_settings(tmp_path))


def test_a_runtime_that_is_not_installed_is_a_load_error(
    dense_model: BuiltModel, tmp_path: Path
) -> None:
    # As in a zip function on the LiteRT layer: TensorFlow cannot be imported at all.
    art = dense_model.as_artifact(tmp_path / "dense")
    script = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "from pathlib import Path\n"
        "from preheat.artifact import manifest\n"
        "from preheat.exceptions import LoadError\n"
        "from preheat.runtimes import load\n"
        "d = Path(sys.argv[1])\n"
        "try:\n"
        "    load(d, manifest.read(d))\n"
        "except LoadError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(art)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "needs the tensorflow runtime, but tensorflow is not installed" in proc.stdout
    assert "container image" in proc.stdout
