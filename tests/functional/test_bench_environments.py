"""The bench's TensorFlow environments: what users install, and preheat's lean one, really run."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.version import Version

from preheat.exceptions import ConfigurationError
from preheat.tools.bench.environments import (
    as_pip_gives,
    closure,
    packages,
    pip_gives,
    site_view,
    tensorflow_layer,
    tensorflow_pin,
)
from preheat.tools.bench.managed import interpreter
from tests.fixtures.models import BuiltModel

# Loads a local artifact through preheat in the lean environment and says what got imported.
_LEAN_CHILD = """
import json, sys
import numpy as np
import preheat
model = preheat.load_model(sys.argv[1])
out = model.predict({"x": np.ones((2, 4), dtype="float32")})
print(json.dumps({
    "outputs": {k: v.tolist() for k, v in out.items()},
    "keras": sorted(m for m in sys.modules if m == "keras" or m.startswith("keras.")),
    "tf_import": model.init_report.get("tf_import"),
    "tensorflow_file": sys.modules["tensorflow"].__path__[0],
}))
"""


@pytest.fixture(scope="module")
def layers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("environments")
    return {kind: tensorflow_layer(kind, work) for kind in ("user", "lean")}


def test_the_user_environment_is_what_pip_install_tensorflow_gives(
    layers: dict[str, Path],
) -> None:
    names = {p.split("==")[0] for p in packages(layers["user"])}
    assert {"tensorflow-cpu", "keras", "boto3"} <= names
    # Nothing of preheat's, nor the dev tools this installation carries.
    assert not names & {"preheat", "matplotlib", "moto", "pytest", "obstore"}
    assert not (layers["user"] / "python" / "preheat").exists()


def _version(layer: Path, name: str) -> str:
    (found,) = [p.split("==")[1] for p in packages(layer) if p.split("==")[0] == name]
    return found


def test_each_environment_holds_what_pip_gives_not_what_is_installed_here(
    layers: dict[str, Path], tmp_path: Path
) -> None:
    # What `pip install tensorflow-cpu boto3` installs today, asked of pip independently.
    gives = pip_gives([tensorflow_pin(), "boto3"])
    user = layers["user"]
    assert _version(user, "ml-dtypes") == gives["ml-dtypes"]
    record = json.loads((user / "resolution.json").read_text())
    assert record["unresolved"] is None
    installed = metadata.version("ml-dtypes")
    if installed != gives["ml-dtypes"]:
        assert record["swapped"]["ml-dtypes"] == [installed, gives["ml-dtypes"]]
    # The environment's interpreter imports the swapped-in version through the links.
    proc = subprocess.run(
        [str(interpreter(tmp_path)), "-c", "import ml_dtypes; print(ml_dtypes.__version__)"],
        env={"PYTHONPATH": str(user / "python")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip() == gives["ml-dtypes"], proc.stderr[-1000:]
    # preheat's extra holds ml-dtypes below 0.7 where 0.7's import is slow (Python < 3.12).
    lean = Version(_version(layers["lean"], "ml-dtypes"))
    assert (lean < Version("0.7")) == (sys.version_info < (3, 12))


def test_a_version_pip_gives_is_installed_alone_once_and_linked(tmp_path: Path) -> None:
    dists = closure(["packaging"])
    other = "23.2" if dists["packaging"].version != "23.2" else "24.0"
    out, resolution = as_pip_gives(
        dists, ["packaging"], tmp_path, gives=lambda _r: {"packaging": other}
    )
    assert out["packaging"].version == other
    assert resolution.swapped == {"packaging": (dists["packaging"].version, other)}
    (target,) = tmp_path.iterdir()
    assert (target / ".complete").is_file() and (target / "packaging" / "version.py").is_file()
    view = site_view(out.values(), tmp_path / "site")
    assert (view / "packaging").resolve() == (target / "packaging").resolve()
    # Asked again: the install is reused, nothing is fetched.
    mtime = (target / ".complete").stat().st_mtime_ns
    as_pip_gives(dists, ["packaging"], tmp_path, gives=lambda _r: {"packaging": other})
    assert (target / ".complete").stat().st_mtime_ns == mtime


def test_a_version_pip_cannot_install_leaves_the_environment_as_installed(
    tmp_path: Path,
) -> None:
    dists = closure(["packaging"])
    bogus = {"packaging": "0.0.1.dev999"}  # resolvable by no index
    out, resolution = as_pip_gives(dists, ["packaging"], tmp_path, gives=lambda _r: bogus)
    assert out == dists and resolution.swapped == {}
    assert resolution.unresolved is not None and "0.0.1.dev999" in resolution.unresolved
    assert list(tmp_path.iterdir()) == []  # no half-installed folder left behind


def test_the_lean_environment_has_tensorflow_and_preheat_but_no_keras(
    layers: dict[str, Path],
) -> None:
    names = {p.split("==")[0] for p in packages(layers["lean"])}
    assert {"tensorflow-cpu", "orjson", "aws-lambda-powertools", "filelock"} <= names
    assert not names & {"keras", "matplotlib", "moto", "pytest", "rich", "optree"}
    assert (layers["lean"] / "python" / "preheat" / "__init__.py").is_file()


def test_a_keras_export_loads_in_the_lean_environment_without_keras(
    layers: dict[str, Path], dense_model: BuiltModel, tmp_path: Path
) -> None:
    artifact = dense_model.as_artifact(tmp_path / "artifact")
    python = interpreter(tmp_path)
    proc = subprocess.run(
        [str(python), "-c", _LEAN_CHILD, str(artifact)],
        env={
            "PYTHONPATH": str(layers["lean"] / "python"),
            "PREHEAT_CACHE_DIR": str(tmp_path / "cache"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["keras"] == []
    assert got["tf_import"] == "lean"
    # The environment's TensorFlow, reached through its links, not another installation's.
    assert got["tensorflow_file"].startswith(str(layers["lean"]))
    expected = dense_model.reference({"x": np.ones((2, 4), dtype="float32")})
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(got["outputs"][name]), value, rtol=1e-6)


def test_an_unknown_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="use one of user, lean"):
        tensorflow_layer("full", tmp_path)
