"""The LiteRT loader on real converted artifacts: names, dynamic batch, read-only paths."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preheat.artifact import manifest as mf
from preheat.exceptions import LoadError
from preheat.runtimes import litert
from preheat.runtimes import load as load_any
from preheat.tools.slim import inputs as sampling
from preheat.tools.slim import slim

TOLERANCE = 1e-2  # fp16's default relative tolerance


@pytest.fixture(scope="module")
def two_io_artifact(two_io_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("litert") / "two_io"
    slim(two_io_model.path, out, runtime="litert", precision="fp16")
    return out


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    peak = float(np.max(np.abs(want))) or 1.0
    return got.shape == want.shape and float(np.max(np.abs(got - want))) / peak <= TOLERANCE


def test_outputs_keep_the_saved_model_names_at_any_batch(
    two_io_artifact: Path, two_io_model: Any
) -> None:
    model = litert.load(two_io_artifact, mf.read(two_io_artifact))
    assert model.signature == two_io_model.signature
    for rows in (1, 5, 2, 17):
        inputs = sampling.generate(two_io_model.signature, rows, seed=rows)[0]
        got = model.predict(inputs)
        want = two_io_model.reference(inputs)
        assert set(got) == {"scores", "total"}
        assert all(_close(got[k], want[k]) for k in want), rows


def test_inputs_are_coerced_and_outputs_are_not_overwritten(
    two_io_artifact: Path, two_io_model: Any
) -> None:
    model = litert.load(two_io_artifact, mf.read(two_io_artifact), warmup=False)
    first_in = {"features": np.ones((2, 4), np.float64), "ids": np.array([1, 2], np.int64)}
    first = model.predict(first_in)
    kept = first["scores"].copy()
    model.predict({"features": np.zeros((2, 4), np.float32), "ids": np.array([0, 0], np.int32)})
    assert np.array_equal(first["scores"], kept)
    want = two_io_model.reference(
        {"features": first_in["features"].astype(np.float32), "ids": np.array([1, 2], np.int32)}
    )
    assert _close(first["scores"], want["scores"])


def test_threads_share_one_model_safely(two_io_artifact: Path, two_io_model: Any) -> None:
    model = litert.load(two_io_artifact, mf.read(two_io_artifact))
    batches = [sampling.generate(two_io_model.signature, 3, seed=s)[0] for s in range(8)]
    wanted = [two_io_model.reference(b) for b in batches]
    failures: list[int] = []

    def work(i: int) -> None:
        for _ in range(20):
            got = model.predict(batches[i])
            if not all(_close(got[k], wanted[i][k]) for k in wanted[i]):
                failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_loads_in_place_from_a_read_only_directory(two_io_artifact: Path, tmp_path: Path) -> None:
    import shutil

    ro = tmp_path / "opt" / "model"
    shutil.copytree(two_io_artifact, ro)
    before = sorted((p.name, p.stat().st_size) for p in ro.iterdir())
    for p in ro.iterdir():
        p.chmod(0o444)
    ro.chmod(0o555)
    try:
        model = load_any(ro, mf.read(ro))
        assert isinstance(model, litert.LiteRTModel)
        assert set(model.predict(sampling.generate(model.signature, 2)[0])) == {"scores", "total"}
        assert sorted((p.name, p.stat().st_size) for p in ro.iterdir()) == before
    finally:
        ro.chmod(0o755)


def test_the_runtime_never_imports_tensorflow(two_io_artifact: Path) -> None:
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from preheat.artifact import manifest as mf\n"
        "from preheat.runtimes import litert\n"
        "d = Path(sys.argv[1])\n"
        "m = litert.load(d, mf.read(d))\n"
        "print(json.dumps({'tf': 'tensorflow' in sys.modules, 'out': sorted(m.predict(\n"
        "    {'features': __import__('numpy').ones((1, 4), 'float32'),\n"
        "     'ids': __import__('numpy').zeros((1,), 'int32')}))}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(two_io_artifact)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
        "tf": False,
        "out": ["scores", "total"],
    }


def test_broken_artifacts_fail_with_load_error(two_io_artifact: Path, tmp_path: Path) -> None:
    manifest = mf.read(two_io_artifact)
    with pytest.raises(LoadError, match="exactly one") as err:
        litert.load(tmp_path, manifest.with_(files=()))
    assert (err.value.model, err.value.runtime, err.value.stage) == (
        f"{manifest.name}/{manifest.version}",
        "litert",
        "load",
    )
    (tmp_path / "model.tflite").write_bytes(b"not a flatbuffer at all")
    with pytest.raises(LoadError, match="cannot read"):
        litert.load(tmp_path, manifest)
    renamed = manifest.with_(
        signature=manifest.signature.__class__(
            key=manifest.signature.key,
            inputs=(*manifest.signature.inputs, mf.TensorSpec("extra", "float32", (None,))),
            outputs=manifest.signature.outputs,
        )
    )
    with pytest.raises(LoadError, match="lacks inputs") as err:
        litert.load(two_io_artifact, renamed)
    assert err.value.stage == "signature"
