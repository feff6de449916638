"""Parity between a slimmed model's outputs and the source's, and tolerances."""

from __future__ import annotations

import math

import numpy as np
import pytest

from preheat.exceptions import ConfigurationError
from preheat.tools.slim import parity


def _out(**arrays: np.ndarray) -> dict[str, list[dict[str, np.ndarray]]]:
    return {"serving_default": [dict(arrays)]}


def test_identical_outputs_are_bit_identical_with_full_agreement() -> None:
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.4, 0.1]], np.float32)
    report = parity.compare(_out(p=probs), _out(p=probs.copy()))
    assert report["bit_identical"] is True
    assert report["max_abs_error"] == 0.0 and report["max_rel_error"] == 0.0
    assert report["top1_agreement"] == 1.0


def test_errors_are_measured_against_the_outputs_largest_magnitude() -> None:
    ref = np.array([[0.0, 2.0], [4.0, 0.001]], np.float32)
    got = ref + np.array([[0.0, 0.0], [0.0, 0.04]], np.float32)
    report = parity.compare(_out(y=ref), _out(y=got))
    assert report["bit_identical"] is False
    assert report["max_abs_error"] == pytest.approx(0.04, rel=1e-5)
    # 0.04 against the output's peak of 4.0, not against the tiny 0.001 it sits on.
    assert report["max_rel_error"] == pytest.approx(0.01, rel=1e-5)


def test_top1_counts_rows_whose_argmax_moved() -> None:
    ref = np.array([[0.1, 0.9], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]], np.float32)
    got = ref.copy()
    got[1] = [0.4, 0.6]
    report = parity.compare(_out(p=ref), _out(p=got))
    assert report["top1_agreement"] == 0.75
    assert report["outputs"]["serving_default/p"]["top1_agreement"] == 0.75


def test_non_float_outputs_compare_exactly() -> None:
    ids = np.array([1, 2, 3], np.int64)
    words = np.array([b"a", b"b"], dtype=object)
    same = parity.compare(_out(ids=ids, w=words), _out(ids=ids.copy(), w=words.copy()))
    assert same["bit_identical"] and same["top1_agreement"] is None
    other = parity.compare(_out(w=words), _out(w=np.array([b"a", b"c"], dtype=object)))
    assert other["bit_identical"] is False and math.isinf(other["max_abs_error"])


def test_a_missing_output_or_shape_change_is_infinite_error() -> None:
    ref = np.ones((2, 3), np.float32)
    missing = parity.compare(_out(a=ref), _out(b=ref))
    assert math.isinf(missing["max_abs_error"])
    reshaped = parity.compare(_out(a=ref), _out(a=ref.reshape(3, 2)))
    assert math.isinf(reshaped["max_abs_error"])
    assert parity.json_safe(reshaped)["max_abs_error"] == "inf"


def test_tolerance_defaults_per_precision_and_validation() -> None:
    fp16 = parity.Tolerance.for_precision("fp16", None, None)
    assert fp16.max_rel_error == parity.DEFAULT_MAX_REL_ERROR["fp16"]
    given = parity.Tolerance.for_precision("fp16", 0.5, None)
    assert given.max_abs_error == 0.5 and given.max_rel_error is None
    with pytest.raises(ConfigurationError, match="max-rel-error"):
        parity.Tolerance.for_precision("fp16", None, -1.0)


def test_misses_names_each_broken_bound() -> None:
    report = {"max_abs_error": 0.2, "max_rel_error": 0.05}
    assert parity.misses(report, parity.Tolerance(0.5, 0.1)) is None
    why = parity.misses(report, parity.Tolerance(0.1, 0.01))
    assert why is not None and "absolute" in why and "relative" in why
    nan_report = {"max_abs_error": float("nan"), "max_rel_error": 0.0}
    assert parity.misses(nan_report, parity.Tolerance(1.0, None)) is not None


def test_config_error_is_one_line() -> None:
    with pytest.raises(ConfigurationError) as info:
        parity.Tolerance.for_precision("fp32", "x", None)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
