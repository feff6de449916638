"""The inputs every strategy answers and how their outputs compare with the source model's.

Inputs are seeded and identical across strategies. Float inputs are multiples of 1/256 in
[0, 1) (like scaled pixels): exact in float32 and short in JSON, so the request carries
precisely the numbers the reference saw and encoding does not dominate warm latency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from preheat.artifact.manifest import Signature
from preheat.runtimes.base import numpy_dtype
from preheat.tools.bench.records import Parity
from preheat.tools.slim.parity import has_class_axis

Inputs = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]


def request_inputs(signature: Signature, count: int, seed: int = 0) -> list[Inputs]:
    """`count` single-row inputs for the signature (dynamic dimensions other than batch: 8)."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        batch: Inputs = {}
        for spec in signature.inputs:
            dims = spec.shape if spec.shape is not None else (None,)
            shape = tuple(1 if i == 0 and d is None else (8 if d is None else d)
                          for i, d in enumerate(dims))  # fmt: skip
            if spec.dtype == "string":
                batch[spec.name] = rng.choice(np.array([b"a", b"b", b"c"], dtype=object), shape)
                continue
            dtype = numpy_dtype(spec.dtype)
            if dtype.kind == "f":
                batch[spec.name] = (rng.integers(0, 256, size=shape) / 256).astype(dtype)
            elif dtype.kind == "b":
                batch[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
            else:
                batch[spec.name] = rng.integers(0, 4, size=shape).astype(dtype)
        batches.append(batch)
    return batches


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.decode() if isinstance(value, bytes) else value


def to_json(inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Inputs as the request body's nested lists (bytes as text)."""
    return {name: _plain(a.tolist()) for name, a in inputs.items()}


def from_json(outputs: Mapping[str, Any], like: Mapping[str, np.ndarray]) -> Outputs:
    """Response outputs as arrays of the reference's dtype (JSON keeps float32 values exact)."""
    got: Outputs = {}
    for name, value in outputs.items():
        ref = like.get(name)
        got[name] = np.asarray(value, dtype=ref.dtype if ref is not None else None)
    return got


def compare(reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> Parity:
    """Max absolute and relative error, top-1 agreement and bit identity over all samples.

    Relative error is against each output's largest magnitude (see preheat.tools.slim.parity, whose
    definitions the benchmark shares so that its figures and the slimmer's agree).
    """
    from preheat.tools.slim.parity import compare as _compare

    report = _compare({"serving": list(reference)}, {"serving": list(candidate)})
    return Parity(
        max_abs_error=float(report["max_abs_error"]),
        max_rel_error=float(report["max_rel_error"]),
        top1_agreement=report["top1_agreement"],
        bit_identical=bool(report["bit_identical"]),
        samples=len(reference),
    )


def constant_outputs(reference: Sequence[Outputs]) -> bool:
    """True when every numeric output holds one value repeated, for every input.

    Some random-weight models collapse to that (e.g. a uniform softmax); then any candidate
    that also answers the constant matches bit for bit, and parity says nothing.
    """
    arrays = [a for outputs in reference for a in outputs.values() if a.dtype.kind in "biuf"]
    return bool(arrays) and all(a.size == 0 or bool(np.all(a == a.flat[0])) for a in arrays)


def variety(reference: Sequence[Outputs]) -> dict[str, Any] | None:
    """How much the source's answers move with the input: what parity can tell apart.

    `spread` is the mean over elements of each output's standard deviation across the
    requests, over its mean magnitude (0: every input answered alike). `top1_classes` counts
    the distinct top-1 classes when the output has a class axis. None below two requests.
    """
    if len(reference) < 2:
        return None
    spreads: list[float] = []
    classes: set[int] | None = None
    for name, first in reference[0].items():
        if first.dtype.kind not in "biuf":
            continue
        stacked = np.stack([outputs[name].astype(np.float64) for outputs in reference])
        size = float(np.abs(stacked).mean())
        spreads.append(float(stacked.std(axis=0).mean()) / size if size > 0 else 0.0)
        if has_class_axis(first):
            top = np.argmax(stacked, axis=-1).ravel().tolist()
            classes = (classes or set()) | {int(t) for t in top}
    if not spreads:
        return None
    return {
        "requests": len(reference),
        "spread": min(spreads),
        "top1_classes": len(classes) if classes is not None else None,
    }
