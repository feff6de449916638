"""Turn a request's raw inputs into arrays the model's signature accepts, or say why not.

Every refusal is a `BadRequest` naming the input and what the model expects, so a caller
can fix the request without reading the model's code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np

from preheat.artifact.manifest import Signature, TensorSpec
from preheat.exceptions import BadRequest
from preheat.runtimes.base import numpy_dtype

_INT_KINDS = "iu"
# Returned by _first_bad_leaf when every leaf is fine (None is itself a possible bad leaf).
_ALL_GOOD = object()
_NUMBER_KINDS = "iuf"


def expected_shape(spec: TensorSpec) -> str:
    """A shape as people read it: the leading dynamic dimension is the batch."""
    if spec.shape is None:
        return "any shape"
    dims = [
        ("batch" if i == 0 else "any") if d is None else str(d) for i, d in enumerate(spec.shape)
    ]
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"


def _shape_str(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def _describe_leaf(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:20]!r}"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _first_bad_leaf(value: object, ok: tuple[type, ...]) -> object:
    """The first leaf of a nested list that is not one of `ok` (bool never counts as int)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, list | tuple):
            stack.extend(reversed(v))
        elif isinstance(v, np.ndarray):
            stack.extend(reversed(v.tolist()))
        elif (isinstance(v, bool) and bool not in ok) or not isinstance(v, ok):
            return v
    return _ALL_GOOD


def _bool_position(value: object) -> str | None:
    """Where the first boolean leaf of a nested list is, as `[i][j]`, or None if it has none."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        v, where = stack.pop()
        if isinstance(v, bool):
            return where or "[0]"
        if isinstance(v, list | tuple):
            stack.extend((item, f"{where}[{i}]") for i, item in reversed(list(enumerate(v))))
    return None


def _has_bool_leaf(value: object, ndim: int) -> bool:
    """True when a rectangular nested list of `ndim` levels holds a boolean anywhere.

    numpy turns `[true, 0.5]` into `[1.0, 0.5]` before any dtype check can see it, so the
    leaves are looked at themselves: flattened level by level and their types collected,
    which runs at C speed (a few ms for a 224x224x3 image sent as lists).
    """
    if isinstance(value, np.ndarray):
        return bool(value.dtype.kind == "b")
    if isinstance(value, bool):
        return True
    if not isinstance(value, list | tuple):
        return False
    flat: list[Any] = list(value)
    for _ in range(ndim - 1):
        flat = list(chain.from_iterable(flat))
    return bool in set(map(type, flat))


def _as_array(name: str, value: object, want: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        # numpy refuses nested lists of unequal lengths: say so in the request's terms.
        raise BadRequest(
            f"input {name!r} is a ragged list (rows of different lengths); "
            f"the model expects a rectangular array of {want}",
            field=name,
        ) from None


def _check_shape(spec: TensorSpec, arr: np.ndarray) -> None:
    if spec.shape is None:
        return
    if arr.ndim != len(spec.shape) or any(
        d is not None and d != a for d, a in zip(spec.shape, arr.shape, strict=False)
    ):
        raise BadRequest(
            f"input {spec.name!r} has shape {_shape_str(arr.shape)}; "
            f"the model expects {expected_shape(spec)}",
            field=spec.name,
        )


def _coerce_string(spec: TensorSpec, value: object) -> np.ndarray:
    bad = _first_bad_leaf(value, (str, bytes))
    if bad is not _ALL_GOOD:
        raise BadRequest(
            f"input {spec.name!r} must hold strings only; found {_describe_leaf(bad)}",
            field=spec.name,
        )
    arr = _as_array(spec.name, value, "strings")
    flat = [s.encode() if isinstance(s, str) else bytes(s) for s in arr.ravel().tolist()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape)


def _non_numeric(spec: TensorSpec, value: object, want: str) -> BadRequest:
    bad = _first_bad_leaf(value, (int, float))
    if bad is _ALL_GOOD:
        # Every leaf is a number, yet numpy needed objects: an integer too big for 64 bits.
        return BadRequest(
            f"input {spec.name!r} has a value outside {spec.dtype}'s range", field=spec.name
        )
    return BadRequest(
        f"input {spec.name!r} must hold {want} only; found {_describe_leaf(bad)}",
        field=spec.name,
    )


def _coerce_number(spec: TensorSpec, value: object, allow_non_finite: bool) -> np.ndarray:
    dtype = numpy_dtype(spec.dtype)
    if dtype.kind == "b":
        want = "booleans (true/false)"
    elif dtype.kind in _INT_KINDS:
        want = f"integers ({spec.dtype})"
    else:
        want = f"numbers ({spec.dtype})"
    arr = _as_array(spec.name, value, want)
    if dtype.kind == "b":
        if arr.dtype.kind != "b":
            raise BadRequest(
                f"input {spec.name!r} must hold {want} only; found {arr.dtype.name} values",
                field=spec.name,
            )
        return arr
    if arr.dtype.kind == "b" or (
        arr.dtype.kind in _NUMBER_KINDS and _has_bool_leaf(value, arr.ndim)
    ):
        where = _bool_position(value) if not isinstance(value, np.ndarray) else None
        at = f" at {where}" if where else ""
        raise BadRequest(
            f"input {spec.name!r} must hold {want} only; found a boolean{at} "
            "(true/false are not read as 1/0)",
            field=spec.name,
        )
    if arr.dtype.kind not in _NUMBER_KINDS:
        raise _non_numeric(spec, value, want)
    if arr.size == 0:
        return arr.astype(dtype)
    if arr.dtype.kind == "f" and not allow_non_finite and not np.isfinite(arr).all():
        raise BadRequest(
            f"input {spec.name!r} contains NaN or Infinity; non-finite values are refused, "
            "send finite numbers",
            field=spec.name,
        )
    if dtype.kind in _INT_KINDS:
        if arr.dtype.kind == "f" and (not np.isfinite(arr).all() or (arr != np.floor(arr)).any()):
            raise BadRequest(
                f"input {spec.name!r} expects {want}; found a fractional or non-finite value "
                "(it is not rounded for you)",
                field=spec.name,
            )
        info = np.iinfo(dtype)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise BadRequest(
                f"input {spec.name!r} has a value outside {spec.dtype}'s range "
                f"{info.min}..{info.max}",
                field=spec.name,
            )
        return arr.astype(dtype)
    with np.errstate(over="ignore"):
        out = arr.astype(dtype)
    if not allow_non_finite and not np.isfinite(out).all():
        raise BadRequest(
            f"input {spec.name!r} has a value too large for {spec.dtype}", field=spec.name
        )
    return out


def coerce_input(spec: TensorSpec, value: object, *, allow_non_finite: bool = False) -> np.ndarray:
    """One input, checked against its spec and converted to its dtype."""
    if isinstance(value, Mapping):
        raise BadRequest(
            f"input {spec.name!r} is an object; the model expects an array of shape "
            f"{expected_shape(spec)}",
            field=spec.name,
        )
    if spec.dtype == "string":
        arr = _coerce_string(spec, value)
    else:
        arr = _coerce_number(spec, value, allow_non_finite)
    _check_shape(spec, arr)
    return arr


def _named(signature: Signature, raw: object) -> Mapping[str, Any]:
    names = [t.name for t in signature.inputs]
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, Sequence | np.ndarray) and not isinstance(raw, str | bytes):
        if len(names) == 1:
            return {names[0]: raw}
        raise BadRequest(
            f"this model has {len(names)} inputs ({', '.join(names)}); a bare list fits only a "
            "single-input model, send an object of input name to array"
        )
    raise BadRequest(
        f"inputs must be an object of input name to array (inputs: {', '.join(names)}); "
        f"got {_describe_leaf(raw)}"
    )


def _check_batch(signature: Signature, arrays: Mapping[str, np.ndarray]) -> None:
    # Inputs whose first dimension is dynamic share the batch; disagreeing sizes would only
    # fail later inside the runtime with a message nobody can act on.
    batched = {
        t.name: arrays[t.name].shape[0]
        for t in signature.inputs
        if t.shape and t.shape[0] is None and arrays[t.name].ndim > 0
    }
    if len(set(batched.values())) > 1:
        sizes = ", ".join(f"{n!r} has {b}" for n, b in batched.items())
        raise BadRequest(f"inputs disagree on the batch size (first dimension): {sizes}")


def _misspelt(name: str, missing: list[str], expected: list[str]) -> str:
    import difflib  # only on this error path

    close = difflib.get_close_matches(name, missing, n=1, cutoff=0.5)
    if close:
        return f"unknown input {name!r}; did you mean {close[0]!r}?"
    return (
        f"unknown input {name!r}; the model expects {', '.join(map(repr, expected))} "
        f"and {missing[0]!r} is missing"
    )


def coerce_inputs(
    signature: Signature, raw: Any, *, allow_non_finite: bool = False
) -> dict[str, np.ndarray]:
    """Validate `raw` (name → nested lists, or a bare list for one input) against `signature`.

    Returns arrays of the signature's dtypes; raises BadRequest (status 400) naming the
    input and what the model expects.
    """
    named = _named(signature, raw)
    expected = [t.name for t in signature.inputs]
    missing = [n for n in expected if n not in named]
    unknown = sorted(str(n) for n in named if n not in expected)
    if missing and unknown:
        # A misspelt name shows up as one missing and one unknown: name both ends of it.
        raise BadRequest(_misspelt(unknown[0], missing, expected), field=unknown[0])
    if missing:
        raise BadRequest(
            f"missing input {missing[0]!r}; the model expects {', '.join(map(repr, expected))}",
            field=missing[0],
        )
    if unknown:
        raise BadRequest(
            f"unknown input {unknown[0]!r}; the model expects {', '.join(map(repr, expected))}",
            field=unknown[0],
        )
    arrays = {
        t.name: coerce_input(t, named[t.name], allow_non_finite=allow_non_finite)
        for t in signature.inputs
    }
    _check_batch(signature, arrays)
    return arrays
