"""Which runtime is imported ahead of the model, and what its import adds to the init report."""

from __future__ import annotations

from preheat.runtimes.imports import RuntimeImport, expected_runtime


def test_tensorflow_is_the_guess_wherever_it_is_installed() -> None:
    assert expected_runtime(lambda pkg: True) == "tensorflow"
    assert expected_runtime(lambda pkg: pkg == "ai_edge_litert") == "litert"
    assert expected_runtime(lambda pkg: False) is None


def test_the_report_names_the_path_and_why_only_when_it_is_not_the_default() -> None:
    lean = RuntimeImport("tensorflow", 1.25, "lean", "default")
    assert lean.report() == {"runtime_import_s": 1.25, "tf_import": "lean"}
    fell_back = RuntimeImport("tensorflow", 1.25, "full", "fell back from lean: x", 0.9)
    assert fell_back.report() == {
        "runtime_import_s": 1.25,
        "tf_import": "full",
        "tf_import_reason": "fell back from lean: x",
        "tf_fallback_s": 0.9,
    }
    assert RuntimeImport("litert", 0.1).report() == {"runtime_import_s": 0.1}
