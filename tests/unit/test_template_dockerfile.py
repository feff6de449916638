"""infra/Dockerfile, checked statically (no Docker engine here): base, pins, sources, handler."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from preheat import constants as c

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def args() -> dict[str, str]:
    found: dict[str, str] = {}
    for word, rest in instructions():
        if word == "ARG":
            name, _, default = rest.partition("=")
            found[name] = default
    return found


def test_base_image_is_the_lambda_python_image() -> None:
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms == ["public.ecr.aws/lambda/python:3.12"]


def test_tensorflow_is_pinned_like_the_pyproject_extra() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = [Requirement(r) for r in pyproject["project"]["optional-dependencies"]["tensorflow"]]
    (pin,) = [r for r in extra if r.name == "tensorflow-cpu"]
    assert args()["TENSORFLOW_PACKAGE"] == str(pin)
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert '"${TENSORFLOW_PACKAGE}"' in runs
    # The extra's other pins are for older Pythons only: the image's 3.12 needs none of them.
    for other in extra:
        if other is not pin:
            assert other.marker is not None
            assert not other.marker.evaluate({"python_version": "3.12", "extra": "tensorflow"})


def test_every_copy_source_exists_in_the_checkout() -> None:
    defaults = args()
    copies = [rest.split() for word, rest in instructions() if word == "COPY"]
    assert copies
    for parts in copies:
        for src in parts[:-1]:
            src = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], src)
            assert (ROOT / src).exists(), src


def test_the_model_lands_on_the_read_only_tier_path() -> None:
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    # LAMBDA_TASK_ROOT is /var/task in the base image.
    path = "${LAMBDA_TASK_ROOT}/preheat/models/${name}/${version}"
    assert path in runs
    assert "/var/task/preheat/models" in c.DEFAULT_LOCAL_PATHS
    assert args()["MODEL_DIR"] == "infra/no-model"
    assert not (ROOT / "infra" / "no-model" / "manifest.json").exists()


def test_cmd_names_a_handler_that_exists() -> None:
    (cmd,) = [rest for word, rest in instructions() if word == "CMD"]
    (handler,) = ast.literal_eval(cmd)
    module, func = handler.split(".")
    copies = [rest.split() for word, rest in instructions() if word == "COPY"]
    (function_copy,) = [p for p in copies if p[0].startswith("functions/")]
    source = ROOT / function_copy[0] / f"{module}.py"
    tree = ast.parse(source.read_text())
    assert func in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_the_image_drops_exactly_what_tensorflow_pulls_in_for_keras() -> None:
    """The lean image's uninstall list is what the user's TensorFlow environment has and the
    lean one (TensorFlow without keras, plus preheat's runtime) does not."""
    from preheat.tools.bench.environments import LEAN_EXCLUDES, closure

    with_keras = set(closure(["tensorflow-cpu"]))
    without = set(closure(["tensorflow-cpu"], LEAN_EXCLUDES))
    assert set(args()["KERAS_ONLY"].strip('"').split()) == with_keras - without
    assert args()["WITH_KERAS"] == "false"
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert 'if [ "${WITH_KERAS}" != "true" ]; then pip uninstall -y ${KERAS_ONLY}; fi' in runs


def test_the_base_image_runs_the_snapstart_hooks() -> None:
    """SnapStart on an image: an AWS Python 3.12+ base image coordinates the lifecycle (its
    runtime client runs snapshot_restore_py's hooks), as long as its entrypoint is kept."""
    (base,) = [rest for word, rest in instructions() if word == "FROM"]
    repository, _, tag = base.partition(":")
    assert repository == "public.ecr.aws/lambda/python"
    assert tuple(int(p) for p in tag.split(".")[:2]) >= (3, 12)
    words = {word for word, _ in instructions()}
    assert "ENTRYPOINT" not in words
    # The label is for images whose own runtime client handles restores; this one does not.
    labels = " ".join(rest for word, rest in instructions() if word == "LABEL")
    assert "snapstart" not in labels
