"""Layer zips for real: the model layer where the read-only tier looks, and one LiteRT
runtime layer (built twice per session from the package index) that must be reproducible
and must run a prediction in a clean interpreter that sees only the layers."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.exceptions import IntegrityError, LayerTooLarge, ManifestError, UnsafePathError
from preheat.runtimes import litert
from preheat.tools.cli import main
from preheat.tools.layer import (
    LayerResult,
    build_model_layer,
    build_runtime_layer,
    check_limits,
)
from preheat.tools.layer import (
    plan as layer_plan,
)
from preheat.tools.layer.zipsafe import extract
from preheat.tools.slim import inputs as sampling
from preheat.tools.slim import slim

TARGET_PYTHON = layer_plan.default_python("litert")


@pytest.fixture(scope="module")
def dense_artifact(dense_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifact") / "dense"
    slim(dense_model.path, out, runtime="litert", precision="fp16", name="dense", version="v1")
    return out


def test_model_layer_unpacks_where_the_read_only_tier_looks(
    dense_artifact: Path, tmp_path: Path
) -> None:
    from preheat.cache import local

    result = build_model_layer(dense_artifact, tmp_path / "dist")
    assert result.zip_path.name == f"preheat-model-dense-v1-{result.sha256[:16]}.zip"
    opt = tmp_path / "opt"
    extract(result.zip_path, opt)
    # Lambda unpacks layers under /opt: DEFAULT_LOCAL_PATHS[0] re-rooted at our "opt".
    models = opt / Path(c.DEFAULT_LOCAL_PATHS[0]).relative_to("/opt")
    found = local.find([models], "dense", "v1")
    assert found is not None
    directory, manifest = found
    assert mf.verify_dir(directory, manifest) == []
    model = litert.load(directory, manifest)
    assert set(model.predict(sampling.generate(manifest.signature, 2)[0])) == {
        t.name for t in manifest.signature.outputs
    }
    assert result.unzipped_bytes == sum(f.size for f in manifest.files) + (
        (dense_artifact / c.MANIFEST_NAME).stat().st_size
    )


def test_model_layer_is_reproducible_and_reused(dense_artifact: Path, tmp_path: Path) -> None:
    a = build_model_layer(dense_artifact, tmp_path / "a")
    b = build_model_layer(dense_artifact, tmp_path / "b")
    assert a.zip_path.read_bytes() == b.zip_path.read_bytes()
    again = build_model_layer(dense_artifact, tmp_path / "a")
    assert again.reused and again.zip_path == a.zip_path


def test_model_layer_refuses_a_tampered_or_foreign_artifact(
    dense_artifact: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(dense_artifact, bad)
    data = bytearray((bad / "model.tflite").read_bytes())
    data[100] ^= 0xFF
    (bad / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.tflite"):
        build_model_layer(bad, tmp_path / "dist")
    extra = tmp_path / "extra"
    shutil.copytree(dense_artifact, extra)
    (extra / "notes.txt").write_text("not listed")
    with pytest.raises(ManifestError, match="does not list"):
        build_model_layer(extra, tmp_path / "dist")
    linked = tmp_path / "linked"
    shutil.copytree(dense_artifact, linked)
    (linked / "escape").symlink_to("/etc/hostname")
    with pytest.raises(UnsafePathError):
        build_model_layer(linked, tmp_path / "dist")
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").glob("*.zip"))


def test_cli_refuses_the_tensorflow_runtime_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["layer", "--runtime", "tensorflow", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert "infra/Dockerfile" in err and "\n" not in err
    assert not (tmp_path / "d").exists()
    assert main(["layer", "--python", "2.7", "--out", str(tmp_path / "d")]) == 2
    assert "python='2.7'" in capsys.readouterr().err


def test_cli_refuses_a_model_the_runtime_cannot_load(
    dense_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = dense_model.as_artifact(tmp_path / "tf-artifact")
    argv = ["layer", "--runtime", "litert", "--model", str(artifact), "--out", str(tmp_path / "d")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "tensorflow artifact" in err and "\n" not in err
    assert not (tmp_path / "d").exists()


# ----------------------------------------------------------------- the runtime layer


@pytest.fixture(scope="session")
def runtime_layers(tmp_path_factory: pytest.TempPathFactory) -> tuple[LayerResult, LayerResult]:
    if layer_plan.find_interpreter(TARGET_PYTHON) is None:
        pytest.skip(f"no Python {TARGET_PYTHON} here to smoke-test a layer for it")
    # Two independent builds (the pip cache is shared): the zips must match byte for byte.
    first = build_runtime_layer("litert", tmp_path_factory.mktemp("layer-a"), arch="x86_64")
    second = build_runtime_layer("litert", tmp_path_factory.mktemp("layer-b"), arch="x86_64")
    return first, second


@pytest.mark.slow
def test_runtime_layer_is_reproducible_byte_for_byte(
    runtime_layers: tuple[LayerResult, LayerResult],
) -> None:
    first, second = runtime_layers
    assert not first.reused and not second.reused
    assert first.sha256 == second.sha256
    assert first.zip_path.read_bytes() == second.zip_path.read_bytes()
    assert first.zip_path.name.endswith(f"-{first.sha256[:16]}.zip")
    assert check_limits([first]) == []
    # Same inputs into the same directory: the earlier zip is returned without a rebuild.
    again = build_runtime_layer("litert", first.zip_path.parent, arch="x86_64")
    assert again.reused and again.sha256 == first.sha256 and again.zip_path == first.zip_path
    assert again.packages == first.packages


@pytest.mark.slow
def test_runtime_layer_holds_the_runtime_part_precompiled(
    runtime_layers: tuple[LayerResult, LayerResult],
) -> None:
    layer = runtime_layers[0]
    with zipfile.ZipFile(layer.zip_path) as zf:
        names = set(zf.namelist())
    assert all(n.startswith("python/") for n in names)
    assert "python/preheat/runtimes/litert.py" in names
    assert "python/preheat/cache/__init__.py" in names
    for dev_only in ("cli", "slim", "layer", "bench", "emulator", "deploy"):
        assert not any(n.startswith(f"python/preheat/{dev_only}/") for n in names), dev_only
    assert not any(n.startswith(("python/boto3/", "python/botocore/")) for n in names)
    assert not any("/tests/" in n or n.endswith((".pyi", ".h")) for n in names)
    tag = f"cpython-{TARGET_PYTHON.replace('.', '')}"
    sources = [n for n in names if n.endswith(".py") and n.startswith("python/preheat/")]
    for src in sources:
        folder, _, file = src.rpartition("/")
        assert f"{folder}/__pycache__/{file[:-3]}.{tag}.pyc" in names, src
    assert {"numpy", "ai_edge_litert", "preheat"} <= set(layer.packages)


@pytest.mark.slow
def test_runtime_layer_predicts_in_a_clean_interpreter(
    runtime_layers: tuple[LayerResult, LayerResult],
    dense_artifact: Path,
    dense_model: Any,
    tmp_path: Path,
) -> None:
    interpreter = layer_plan.find_interpreter(TARGET_PYTHON)
    assert interpreter is not None
    rt = tmp_path / "opt-runtime"
    extract(runtime_layers[0].zip_path, rt)
    model_layer = build_model_layer(dense_artifact, tmp_path / "dist")
    opt_models = tmp_path / "opt-model"
    extract(model_layer.zip_path, opt_models)
    models_dir = opt_models / Path(c.DEFAULT_LOCAL_PATHS[0]).relative_to("/opt")
    inputs = sampling.generate(dense_model.signature, 3, seed=5)[0]
    code = (
        "import json, sys\n"
        "sys.path[:] = [sys.argv[1]] + [p for p in sys.path if 'site-packages' not in p]\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from preheat.cache import local\n"
        "from preheat import runtimes\n"
        "directory, manifest = local.find([Path(sys.argv[2])], 'dense', 'v1')\n"
        "model = runtimes.load(directory, manifest)\n"
        "inputs = {k: np.array(v, dtype='float32') for k, v in json.loads(sys.argv[3]).items()}\n"
        "out = {k: v.tolist() for k, v in model.predict(inputs).items()}\n"
        "files = [np.__file__, runtimes.__file__, sys.modules['ai_edge_litert'].__file__]\n"
        "print(json.dumps({'out': out, 'files': files, 'tf': 'tensorflow' in sys.modules}))\n"
    )
    proc = subprocess.run(
        [
            interpreter,
            "-I",
            "-S",
            "-c",
            code,
            str(rt / "python"),
            str(models_dir),
            json.dumps({k: v.tolist() for k, v in inputs.items()}),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["tf"] is False
    assert all(f.startswith(str(rt / "python")) for f in answer["files"]), answer["files"]
    want = dense_model.reference(inputs)
    assert set(answer["out"]) == set(want)
    for name, value in want.items():
        got = np.array(answer["out"][name], dtype=np.float32)
        peak = float(np.max(np.abs(value))) or 1.0
        assert float(np.max(np.abs(got - value))) / peak <= 1e-2


@pytest.mark.slow
def test_limits_count_the_runtime_layer_with_a_big_function(
    runtime_layers: tuple[LayerResult, LayerResult],
) -> None:
    layer = runtime_layers[0]
    room = c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES - layer.unzipped_bytes
    assert check_limits([layer], function_unzipped_bytes=room) == []
    with pytest.raises(LayerTooLarge, match="numpy"):
        check_limits([layer], function_unzipped_bytes=room + 1)
