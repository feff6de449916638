"""Order statistics behind every benchmark figure."""

from __future__ import annotations

import math

import pytest

from preheat.tools.bench.stats import median, median_by_key, percentile, ratio


def test_percentile_interpolates_between_ranks() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == 25.0
    assert percentile(values, 99) == pytest.approx(39.7)


def test_percentile_ignores_nan_and_is_none_when_empty() -> None:
    assert percentile([], 50) is None
    assert percentile([math.nan], 50) is None
    assert median([math.nan, 3.0, 1.0]) == 2.0


def test_percentile_refuses_out_of_range_q() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        percentile([1.0], 101)


def test_median_by_key_counts_a_missing_phase_as_absent_not_zero() -> None:
    samples = [{"import": 100.0, "load": 10.0}, {"import": 300.0}, {"import": 200.0}]
    assert median_by_key(samples) == {"import": 200.0, "load": 10.0}


def test_ratio_is_none_without_a_positive_denominator() -> None:
    assert ratio(6.0, 2.0) == 3.0
    assert ratio(None, 2.0) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(1.0, None) is None
