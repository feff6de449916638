"""Request inputs are checked against the signature and refused with a message that helps."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from preheat.artifact.manifest import Signature, TensorSpec
from preheat.exceptions import BadRequest
from preheat.runtimes.validate import coerce_inputs, expected_shape

DENSE = Signature(
    "serving_default",
    inputs=(TensorSpec("x", "float32", (None, 4)),),
    outputs=(TensorSpec("y", "float32", (None, 3)),),
)
TWO = Signature(
    "serving_default",
    inputs=(TensorSpec("features", "float32", (None, 4)), TensorSpec("ids", "int32", (None,))),
    outputs=(TensorSpec("scores", "float32", (None, 2)),),
)
WORDS = Signature(
    "serving_default",
    inputs=(TensorSpec("words", "string", (None,)),),
    outputs=(TensorSpec("ids", "int64", (None,)),),
)
FLAGS = Signature(
    "serving_default",
    inputs=(TensorSpec("on", "bool", (None,)),),
    outputs=(TensorSpec("y", "float32", (None,)),),
)
ANY_RANK = Signature(
    "serving_default",
    inputs=(TensorSpec("t", "float64", None),),
    outputs=(TensorSpec("y", "float64", None),),
)


def refused(signature: Signature, raw: Any) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        coerce_inputs(signature, raw)
    assert info.value.status == 400
    return info.value


def test_named_inputs_are_converted_to_the_signature_dtypes() -> None:
    out = coerce_inputs(TWO, {"features": [[1, 2, 3, 4], [5, 6, 7, 8.5]], "ids": [1, 2.0]})
    assert out["features"].dtype == np.float32 and out["features"].shape == (2, 4)
    assert out["ids"].dtype == np.int32 and out["ids"].tolist() == [1, 2]


def test_a_bare_list_feeds_a_single_input_model() -> None:
    out = coerce_inputs(DENSE, [[0.5, 1, 2, 3]])
    assert list(out) == ["x"]
    np.testing.assert_array_equal(out["x"], np.array([[0.5, 1, 2, 3]], dtype="float32"))


def test_a_bare_list_is_refused_for_a_multi_input_model() -> None:
    err = refused(TWO, [[1, 2, 3, 4]])
    assert "2 inputs" in str(err) and "features" in str(err) and "ids" in str(err)


def test_missing_input_is_named() -> None:
    err = refused(TWO, {"features": [[1, 2, 3, 4]]})
    assert err.field == "ids"
    assert "missing input 'ids'" in str(err)


def test_unknown_input_is_named() -> None:
    err = refused(DENSE, {"x": [[1, 2, 3, 4]], "extra": [1]})
    assert err.field == "extra"
    assert "unknown input 'extra'" in str(err) and "'x'" in str(err)


def test_wrong_shape_names_the_input_its_shape_and_the_expected_one() -> None:
    err = refused(DENSE, {"x": [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]]})
    assert str(err) == "input 'x' has shape (2, 5); the model expects (batch, 4)"
    assert err.field == "x"


def test_wrong_rank_is_refused() -> None:
    err = refused(DENSE, {"x": [1, 2, 3, 4]})
    assert "shape (4,)" in str(err) and "(batch, 4)" in str(err)


def test_ragged_rows_are_refused() -> None:
    err = refused(DENSE, {"x": [[1, 2, 3, 4], [1, 2]]})
    assert "ragged" in str(err) and err.field == "x"


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ([[1, 2, "three", 4]], "the string 'three'"),
        ([[1, 2, None, 4]], "null"),
        ([[1, 2, {"a": 1}, 4]], "an object"),
        ([[True, False, True, False]], "bool"),
    ],
)
def test_non_numeric_values_are_refused(value: Any, found: str) -> None:
    err = refused(DENSE, {"x": value})
    assert "input 'x'" in str(err) and found in str(err)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused_by_default(bad: float) -> None:
    err = refused(DENSE, {"x": [[1, 2, bad, 4]]})
    assert "NaN or Infinity" in str(err) and "refused" in str(err)


def test_non_finite_floats_pass_when_allowed() -> None:
    out = coerce_inputs(DENSE, {"x": [[1, 2, math.nan, 4]]}, allow_non_finite=True)
    assert np.isnan(out["x"][0, 2])


def test_a_float_too_large_for_float32_is_refused() -> None:
    err = refused(DENSE, {"x": [[1, 2, 1e300, 4]]})
    assert "too large for float32" in str(err)


def test_fractional_values_for_an_integer_input_are_not_truncated() -> None:
    err = refused(TWO, {"features": [[1, 2, 3, 4]], "ids": [1.5]})
    assert err.field == "ids" and "integers (int32)" in str(err)


def test_integers_outside_the_dtype_range_are_refused() -> None:
    err = refused(TWO, {"features": [[1, 2, 3, 4]], "ids": [2**40]})
    assert "outside int32's range" in str(err)
    err = refused(TWO, {"features": [[1, 2, 3, 4]], "ids": [10**30]})
    assert "outside int32's range" in str(err)


def test_inputs_must_agree_on_the_batch_size() -> None:
    err = refused(TWO, {"features": [[1, 2, 3, 4]] * 3, "ids": [1, 2]})
    assert "batch size" in str(err) and "'features' has 3" in str(err)


def test_strings_are_encoded_for_string_inputs() -> None:
    out = coerce_inputs(WORDS, {"words": ["apple", "café"]})
    assert out["words"].dtype == object
    assert out["words"].tolist() == [b"apple", "café".encode()]


def test_numbers_are_refused_for_string_inputs() -> None:
    err = refused(WORDS, {"words": ["apple", 3]})
    assert "strings only" in str(err) and "int" in str(err)


def test_booleans_feed_bool_inputs_and_numbers_do_not() -> None:
    assert coerce_inputs(FLAGS, {"on": [True, False]})["on"].dtype == np.bool_
    err = refused(FLAGS, {"on": [1, 0]})
    assert "booleans" in str(err)


def test_an_object_where_an_array_belongs_is_refused() -> None:
    err = refused(DENSE, {"x": {"a": 1}})
    assert "is an object" in str(err) and "(batch, 4)" in str(err)


def test_inputs_that_are_neither_object_nor_list_are_refused() -> None:
    err = refused(DENSE, "hello")
    assert "inputs must be an object" in str(err) and "x" in str(err)


def test_unknown_rank_accepts_any_shape() -> None:
    out = coerce_inputs(ANY_RANK, {"t": [[[1.0]], [[2.0]]]})
    assert out["t"].shape == (2, 1, 1) and out["t"].dtype == np.float64
    assert expected_shape(ANY_RANK.inputs[0]) == "any shape"


@given(
    st.lists(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=4, max_size=4
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_finite_float_matrix_of_the_right_width_is_accepted(rows: list[list[float]]) -> None:
    out = coerce_inputs(DENSE, {"x": rows})
    assert out["x"].shape == (len(rows), 4)
    np.testing.assert_array_equal(out["x"], np.array(rows, dtype="float32"))


@given(st.integers(1, 8), st.integers(0, 12).filter(lambda n: n != 4))
def test_any_other_width_is_refused_with_its_shape(batch: int, width: int) -> None:
    err = refused(DENSE, {"x": [[0.0] * width] * batch})
    assert f"shape ({batch}, {width})" in str(err)


CATEGORY = Signature(
    "serving_default",
    inputs=(TensorSpec("category", "string", (None,)), TensorSpec("x", "float32", (None, 4))),
    outputs=(TensorSpec("y", "float32", (None,)),),
)


@pytest.mark.parametrize(
    ("signature", "raw", "where"),
    [
        (DENSE, {"x": [[True, 0.1, 2, 3]]}, "[0][0]"),
        (DENSE, {"x": [[0.5, 0.1, 2, 3], [1, 2, False, 4]]}, "[1][2]"),
        (TWO, {"features": [[1, 2, 3, 4]], "ids": [1, True]}, "[1]"),
        (DENSE, {"x": [[True, False, True, False]]}, "[0][0]"),
    ],
)
def test_a_boolean_anywhere_in_a_numeric_input_is_refused_with_its_position(
    signature: Signature, raw: Any, where: str
) -> None:
    err = refused(signature, raw)
    assert err.field in raw
    assert f"input {err.field!r}" in str(err) and f"found a boolean at {where}" in str(err)


def test_a_misspelt_input_next_to_a_missing_one_suggests_the_name() -> None:
    err = refused(CATEGORY, {"categry": ["a"], "x": [[1, 2, 3, 4]]})
    assert str(err) == "unknown input 'categry'; did you mean 'category'?"
    assert err.field == "categry"


def test_an_unrelated_unknown_input_next_to_a_missing_one_names_both() -> None:
    err = refused(CATEGORY, {"zzz": ["a"], "x": [[1, 2, 3, 4]]})
    assert "unknown input 'zzz'" in str(err) and "'category' is missing" in str(err)
