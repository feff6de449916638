"""Compare a slimmed model's outputs with the source's, and hold them to a tolerance.

Relative error is measured against each output's largest magnitude on the samples (not
element by element, where a near-zero reference would make any difference look huge).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from preheat.exceptions import ConfigurationError

Outputs = dict[str, np.ndarray]

# Default tolerances per precision (relative error as defined above; absolute off by default).
# exact must be bit-identical and takes no tolerance.
DEFAULT_MAX_REL_ERROR: Mapping[str, float] = {"fp32": 1e-4, "fp16": 1e-2, "int8": 1e-1}


@dataclass(frozen=True)
class Tolerance:
    max_abs_error: float | None
    max_rel_error: float | None

    @classmethod
    def for_precision(
        cls, precision: str, max_abs_error: float | None, max_rel_error: float | None
    ) -> Tolerance:
        for name, value in (("max-abs-error", max_abs_error), ("max-rel-error", max_rel_error)):
            if value is not None and not (isinstance(value, int | float) and value >= 0):
                raise ConfigurationError(name, value, "use a number >= 0, e.g. 1e-3")
        if max_abs_error is None and max_rel_error is None:
            max_rel_error = DEFAULT_MAX_REL_ERROR.get(precision)
        return cls(max_abs_error, max_rel_error)

    def as_dict(self) -> dict[str, float | None]:
        return {"max_abs_error": self.max_abs_error, "max_rel_error": self.max_rel_error}


def _numeric(a: np.ndarray) -> bool:
    return a.dtype.kind in "biuf"


def has_class_axis(ref: np.ndarray) -> bool:
    # A float output whose last axis has several entries per row: a class axis for top-1.
    return ref.dtype.kind == "f" and ref.ndim >= 2 and ref.shape[-1] > 1


def compare(
    reference: Mapping[str, Sequence[Outputs]],
    candidate: Mapping[str, Sequence[Outputs]],
) -> dict[str, Any]:
    """Parity over {signature key: [outputs of each sample batch]} from both models."""
    per: dict[str, dict[str, Any]] = {}
    for key, ref_batches in reference.items():
        for ref_outputs, cand_outputs in zip(ref_batches, candidate[key], strict=True):
            for name, ref in ref_outputs.items():
                got = cand_outputs.get(name)
                slot = per.setdefault(
                    f"{key}/{name}",
                    {"max_abs": 0.0, "peak": 0.0, "identical": True, "top1": [0, 0]},
                )
                if got is None or got.shape != ref.shape:
                    slot["identical"] = False
                    slot["max_abs"] = math.inf
                    continue
                if ref.dtype != got.dtype or not np.array_equal(ref, got):
                    slot["identical"] = False
                if not (_numeric(ref) and _numeric(got)):
                    if not np.array_equal(ref, got):
                        slot["max_abs"] = math.inf
                    continue
                r = ref.astype(np.float64)
                g = got.astype(np.float64)
                if r.size:
                    diff = np.abs(r - g)
                    slot["max_abs"] = max(slot["max_abs"], float(np.nanmax(diff)))
                    if np.isnan(g).any() != np.isnan(r).any():
                        slot["max_abs"] = math.inf
                    slot["peak"] = max(slot["peak"], float(np.nanmax(np.abs(r))))
                if has_class_axis(ref):
                    agree = np.argmax(r, axis=-1) == np.argmax(g, axis=-1)
                    slot["top1"][0] += int(agree.sum())
                    slot["top1"][1] += int(agree.size)
    outputs: dict[str, Any] = {}
    for label, slot in sorted(per.items()):
        rel = (
            slot["max_abs"] / slot["peak"]
            if slot["peak"] > 0
            else (0.0 if slot["max_abs"] == 0 else math.inf)
        )
        agreed, total = slot["top1"]
        outputs[label] = {
            "max_abs_error": slot["max_abs"],
            "max_rel_error": rel,
            "top1_agreement": agreed / total if total else None,
            "bit_identical": slot["identical"],
        }
    top1 = [o["top1_agreement"] for o in outputs.values() if o["top1_agreement"] is not None]
    return {
        "max_abs_error": max((o["max_abs_error"] for o in outputs.values()), default=0.0),
        "max_rel_error": max((o["max_rel_error"] for o in outputs.values()), default=0.0),
        "top1_agreement": min(top1) if top1 else None,
        "bit_identical": all(o["bit_identical"] for o in outputs.values()),
        "outputs": outputs,
    }


def misses(report: Mapping[str, Any], tolerance: Tolerance) -> str | None:
    """Why `report` misses `tolerance`, or None when it is within it."""
    reasons = []
    if tolerance.max_abs_error is not None and not (
        report["max_abs_error"] <= tolerance.max_abs_error
    ):
        reasons.append(
            f"max absolute error {report['max_abs_error']:.3g} > {tolerance.max_abs_error:g}"
        )
    if tolerance.max_rel_error is not None and not (
        report["max_rel_error"] <= tolerance.max_rel_error
    ):
        reasons.append(
            f"max relative error {report['max_rel_error']:.3g} > {tolerance.max_rel_error:g}"
        )
    return "; ".join(reasons) or None


def json_safe(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report with infinities as strings, so that it is valid JSON in a manifest."""

    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, Mapping):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [fix(x) for x in v]
        return v

    return {k: fix(v) for k, v in report.items()}
