"""Sample inputs for parity checks: seeded random from a signature, or the user's `.npz`.

A sample set is a list of batches (input name -> array), so that a model with a fixed
batch size and one with a dynamic batch are both fed the shapes they accept.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from preheat.artifact.manifest import Signature, TensorSpec
from preheat.exceptions import ConfigurationError
from preheat.runtimes.base import numpy_dtype

Batch = dict[str, np.ndarray]

# Rows per batch when the batch dimension is dynamic: bounds memory on big models.
MAX_BATCH = 16
# A dynamic dimension other than the batch (a sequence length, say) gets this size.
OTHER_DYNAMIC = 8
# Integer inputs are drawn from [0, INT_HIGH): small enough to index any embedding or vocab.
INT_HIGH = 4
# One string in this many is a random word, so the out-of-vocabulary path is exercised too.
OOV_EVERY = 4
_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def _batch_sizes(signature: Signature, samples: int) -> list[int]:
    fixed = {t.shape[0] for t in signature.inputs if t.shape and t.shape[0] is not None}
    if len(fixed) > 1:
        raise ConfigurationError(
            "signature", signature.key, f"inputs disagree on the batch size ({sorted(fixed)})"
        )
    if fixed:
        # A fixed batch cannot be cut short: round the sample count up to whole batches.
        step = fixed.pop()
        return [step] * -(-samples // step)
    sizes = [MAX_BATCH] * (samples // MAX_BATCH)
    if samples % MAX_BATCH:
        sizes.append(samples % MAX_BATCH)
    return sizes


def _random_words(rng: np.random.Generator, count: int) -> list[str]:
    lengths = rng.integers(3, 9, size=count)
    return ["".join(rng.choice(_LETTERS, size=int(n))) for n in lengths]


def _one(spec: TensorSpec, rows: int, rng: np.random.Generator, vocab: Sequence[str]) -> np.ndarray:
    dims = spec.shape if spec.shape is not None else (None,)
    shape = tuple(
        rows if i == 0 and d is None else (OTHER_DYNAMIC if d is None else d)
        for i, d in enumerate(dims)
    )
    if spec.dtype == "string":
        count = int(np.prod(shape)) if shape else 1
        words = _random_words(rng, count)
        if vocab:
            picks = rng.integers(0, len(vocab), size=count)
            words = [
                w if i % OOV_EVERY == OOV_EVERY - 1 else vocab[int(p)]
                for i, (w, p) in enumerate(zip(words, picks, strict=True))
            ]
        return np.array([w.encode() for w in words], dtype=object).reshape(shape)
    dtype = numpy_dtype(spec.dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, INT_HIGH, size=shape).astype(dtype)
    return rng.random(size=shape, dtype=np.float64).astype(dtype)


def generate(
    signature: Signature, samples: int, seed: int = 0, vocab: Sequence[str] = ()
) -> list[Batch]:
    """`samples` rows of seeded random inputs (strings drawn from `vocab` when given)."""
    if samples < 1:
        raise ConfigurationError("samples", samples, "use at least 1")
    rng = np.random.default_rng(seed)
    return [
        {spec.name: _one(spec, rows, rng, vocab) for spec in signature.inputs}
        for rows in _batch_sizes(signature, samples)
    ]


def _coerce(name: str, array: np.ndarray, spec: TensorSpec, path: Path) -> np.ndarray:
    where = f"{path.name}: array {name!r}"
    if spec.dtype == "string":
        if array.dtype.kind not in "SUO":
            raise ConfigurationError(
                "sample-inputs", str(path.name), f"{where} must hold strings, not {array.dtype}"
            )
        encoded = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel().tolist()]
        return np.array(encoded, dtype=object).reshape(array.shape)
    dtype = numpy_dtype(spec.dtype)
    if array.dtype.kind in "SUO" or not np.can_cast(array.dtype, dtype, casting="same_kind"):
        raise ConfigurationError(
            "sample-inputs",
            str(path.name),
            f"{where} is {array.dtype}; the signature wants {spec.dtype}",
        )
    bad_shape = spec.shape is not None and (
        array.ndim != len(spec.shape)
        or any(d is not None and d != a for d, a in zip(spec.shape, array.shape, strict=True))
    )
    if bad_shape:
        want = tuple("?" if d is None else d for d in spec.shape or ())
        raise ConfigurationError(
            "sample-inputs",
            str(path.name),
            f"{where} has shape {array.shape}; the signature wants {want}",
        )
    return array.astype(dtype, copy=False)


def from_npz(path: Path, signature: Signature) -> list[Batch]:
    """The user's inputs from an `.npz` whose arrays are named like the signature's inputs."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ConfigurationError(
            "sample-inputs", str(path), "no such file; give an .npz written by numpy.savez"
        ) from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ConfigurationError(
            "sample-inputs",
            str(path.name),
            f"not a readable .npz without pickled objects ({exc}); write it with numpy.savez",
        ) from None
    names = {t.name for t in signature.inputs}
    if set(arrays) != names:
        raise ConfigurationError(
            "sample-inputs",
            str(path.name),
            f"arrays {sorted(arrays)} do not match the inputs of signature "
            f"{signature.key!r}: {sorted(names)}",
        )
    coerced = {t.name: _coerce(t.name, arrays[t.name], t, path) for t in signature.inputs}
    rows = {a.shape[0] if a.ndim else 1 for a in coerced.values()}
    if len(rows) != 1 or 0 in rows:
        raise ConfigurationError(
            "sample-inputs",
            str(path.name),
            "every array needs the same, non-zero number of rows (first dimension)",
        )
    total = rows.pop()
    fixed = next((t.shape[0] for t in signature.inputs if t.shape and t.shape[0] is not None), None)
    step = fixed or MAX_BATCH
    if fixed and total % fixed:
        raise ConfigurationError(
            "sample-inputs",
            str(path.name),
            f"{total} rows is not a multiple of the model's fixed batch size {fixed}",
        )
    return [
        {name: a[start : start + step] for name, a in coerced.items()}
        for start in range(0, total, step)
    ]


def rows(batches: Sequence[Batch]) -> int:
    """How many sample rows a batch list holds."""
    total = 0
    for batch in batches:
        first = next(iter(batch.values()), None)
        total += 1 if first is None or first.ndim == 0 else int(first.shape[0])
    return total
