"""Lambda's limits, the build plan's checks, pruning and the per-package size report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from preheat import constants as c
from preheat.exceptions import ConfigurationError, LayerTooLarge
from preheat.tools.layer import check_limits, prune, runtime_layer, smoke
from preheat.tools.layer import plan as layer_plan
from preheat.tools.layer.result import LayerResult

MIB = 2**20


def _layer(name: str, unzipped: int, zipped: int = MIB, **packages: int) -> LayerResult:
    return LayerResult(
        kind="runtime",
        name=name,
        zip_path=Path(f"{name}.zip"),
        sha256="0" * 64,
        zipped_bytes=zipped,
        unzipped_bytes=unzipped,
        packages=packages or {name: unzipped},
    )


def test_within_limits_returns_no_notes() -> None:
    assert check_limits([_layer("rt", 90 * MIB), _layer("model", 50 * MIB)]) == []


def test_over_250_mib_names_the_largest_and_the_alternatives() -> None:
    layers = [
        _layer("rt", 200 * MIB, numpy=120 * MIB, ai_edge_litert=60 * MIB, tiny=MIB),
        _layer("model", 40 * MIB),
    ]
    with pytest.raises(LayerTooLarge) as info:
        check_limits(layers, function_unzipped_bytes=20 * MIB)
    message = str(info.value)
    assert "260.0 MiB" in message and "250.0 MiB" in message
    assert message.index("rt:numpy") < message.index("rt:ai_edge_litert")
    assert "tiny" not in message
    assert "LiteRT" in message and "S3" in message and "container image" in message
    assert "\n" not in message


def test_the_function_counts_against_the_limit() -> None:
    check_limits([_layer("rt", 200 * MIB)], function_unzipped_bytes=50 * MIB)
    with pytest.raises(LayerTooLarge):
        check_limits([_layer("rt", 200 * MIB)], function_unzipped_bytes=50 * MIB + 1)


def test_more_than_five_layers_is_refused() -> None:
    layers = [_layer(f"l{i}", MIB) for i in range(c.LAMBDA_MAX_LAYERS + 1)]
    with pytest.raises(LayerTooLarge, match="5 per function"):
        check_limits(layers)


def test_a_zip_over_50_mib_goes_through_s3_not_an_error() -> None:
    notes = check_limits([_layer("big", 100 * MIB, zipped=60 * MIB)])
    assert len(notes) == 1 and "through S3" in notes[0]


def test_tensorflow_runtime_points_to_the_container_image() -> None:
    with pytest.raises(LayerTooLarge) as info:
        layer_plan.plan("tensorflow", python="3.12", arch="x86_64")
    assert "infra/Dockerfile" in str(info.value) and "250 MB" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"python": "3.8", "arch": "x86_64"}, "python"),
        ({"python": "three", "arch": "x86_64"}, "python"),
        ({"python": "3.12", "arch": "sparc"}, "arch"),
    ],
)
def test_plan_refuses_bad_targets(kwargs: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        layer_plan.plan("litert", **kwargs)
    assert info.value.name == name
    with pytest.raises(ConfigurationError):
        layer_plan.plan("onnx", python="3.12", arch="x86_64")


def test_platform_tags_follow_the_lambda_os_glibc() -> None:
    al2023 = layer_plan.platforms("3.12", "arm64")
    assert "manylinux2014_aarch64" in al2023 and "manylinux_2_34_aarch64" in al2023
    al2 = layer_plan.platforms("3.11", "x86_64")
    assert "manylinux_2_26_x86_64" in al2 and "manylinux_2_27_x86_64" not in al2


def test_plan_pins_the_interpreter_to_the_converters_version() -> None:
    p = layer_plan.plan("litert", python="3.12", arch="x86_64")
    from importlib import metadata

    assert f"ai-edge-litert=={metadata.version('ai-edge-litert')}" in p.requirements
    assert not any(r.startswith("boto3") for r in p.requirements)
    assert p.stem == "preheat-runtime-litert-py312-x86_64"


def test_default_python_avoids_amazon_linux_2_for_litert() -> None:
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    chosen = layer_plan.default_python("litert")
    if layer_plan.LAMBDA_GLIBC[running] < layer_plan.LAMBDA_GLIBC[layer_plan.OLDEST_AL2023_PYTHON]:
        assert chosen == layer_plan.OLDEST_AL2023_PYTHON
    else:
        assert chosen == running


def _site(root: Path) -> Path:
    py = root / "python"
    for rel, size in {
        "numpy/__init__.py": 10,
        "numpy/_core/tests/test_x.py": 100,
        "numpy/f2py/__init__.py": 50,
        "numpy/_core/include/numpy/x.h": 30,
        "numpy.libs/libopenblas.so": 1000,
        "numpy-2.0.dist-info/RECORD": 7,
        "numpy-2.0.dist-info/METADATA": 5,
        "ai_edge_litert/__init__.py": 3,
        "ai_edge_litert/vendors/q/x.so": 400,
        "ai_edge_litert/interpreter.py": 20,
        "bin/f2py": 9,
        "typing_extensions.py": 8,
        "__pycache__/typing_extensions.cpython-312.pyc": 4,
        "google/protobuf/__init__.py": 2,
        "pkg/mod.pyi": 6,
    }.items():
        path = py / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    return py


def test_prune_removes_tests_headers_and_build_tools_only(tmp_path: Path) -> None:
    py = _site(tmp_path)
    removed = prune.prune(py)
    kept = sorted(p.relative_to(py).as_posix() for p in py.rglob("*") if p.is_file())
    assert kept == [
        "ai_edge_litert/__init__.py",
        "ai_edge_litert/interpreter.py",
        "google/protobuf/__init__.py",
        "numpy-2.0.dist-info/METADATA",
        "numpy.libs/libopenblas.so",
        "numpy/__init__.py",
        "typing_extensions.py",
    ]
    assert removed["ai_edge_litert/vendors"] == 400 and removed["*/tests/"] == 100


def test_strip_never_touches_vendored_libs(tmp_path: Path) -> None:
    py = _site(tmp_path)
    (py / "numpy" / "_core").mkdir(parents=True, exist_ok=True)
    elf = py / "numpy" / "_core" / "_multiarray.so"
    elf.write_bytes(b"\x7fELF" + b"\x00" * 60)
    (py / "numpy.libs" / "libopenblas.so").write_bytes(b"\x7fELF" + b"\x00" * 60)
    assert prune.strip_candidates(py) == [elf]


def test_sizes_group_libs_metadata_and_bytecode_with_their_package(tmp_path: Path) -> None:
    py = _site(tmp_path)
    sizes = smoke.package_sizes(py)
    assert sizes["numpy"] == 10 + 100 + 50 + 30 + 1000 + 7 + 5
    assert sizes["typing_extensions"] == 8 + 4
    assert next(iter(sizes)) == "numpy"


def test_top_level_modules_lists_packages_modules_and_namespace_children(tmp_path: Path) -> None:
    py = _site(tmp_path)
    assert smoke.top_level_modules(py) == [
        "ai_edge_litert",
        "google.protobuf",
        "numpy",
        "typing_extensions",
    ]


def test_the_inputs_key_follows_the_target() -> None:
    a = runtime_layer.inputs_key(layer_plan.plan("litert", python="3.12", arch="x86_64"))
    b = runtime_layer.inputs_key(layer_plan.plan("litert", python="3.12", arch="x86_64"))
    c_ = runtime_layer.inputs_key(layer_plan.plan("litert", python="3.13", arch="x86_64"))
    d = runtime_layer.inputs_key(layer_plan.plan("litert", python="3.12", arch="arm64"))
    assert a == b and len({a, c_, d}) == 3
