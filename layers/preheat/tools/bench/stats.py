"""Order statistics for benchmark samples: medians and percentiles, no numpy needed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks; None if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float | None:
    return percentile(values, 50)


def median_by_key(samples: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """For dicts of named figures (e.g. INIT phases), the median of each name seen in any.

    A name missing from some samples counts only where present: a phase one strategy does
    not have is not a zero.
    """
    keys: dict[str, None] = {}
    for s in samples:
        keys.update(dict.fromkeys(s))
    out: dict[str, float] = {}
    for k in keys:
        m = median(s[k] for s in samples if k in s)
        if m is not None:
            out[k] = m
    return out


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not > 0."""
    if numerator is None or denominator is None or not denominator > 0:
        return None
    return numerator / denominator
