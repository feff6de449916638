"""Tensors as raw little-endian bytes: what OIP's binary extension and the raw form carry.

Fixed-size dtypes are their elements back to back, row-major; booleans one byte each;
strings (OIP's BYTES) each a 4-byte little-endian length followed by its bytes.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from preheat.exceptions import BadRequest
from preheat.runtimes.base import numpy_dtype

# More dimensions than any model takes: a request with more is refused before any work.
MAX_RANK = 32
_LENGTH = struct.Struct("<I")


def parse_shape(name: str, shape: object) -> tuple[int, ...]:
    """A request's shape: a list of non-negative integers, or BadRequest naming the input."""
    if not isinstance(shape, list) or len(shape) > MAX_RANK:
        raise BadRequest(
            f"input {name!r} has shape {str(shape)[:40]}; send a list of at most "
            f"{MAX_RANK} non-negative integers",
            field=name,
        )
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(
            f"input {name!r} has shape {str(shape)[:40]}; every dimension must be a "
            "non-negative integer",
            field=name,
        )
    return tuple(shape)


def dtype_of(name: str, dtype: object) -> np.dtype[Any]:
    """The numpy dtype of a manifest-style dtype name ("float32", "string", ...)."""
    if isinstance(dtype, str) and dtype != "object":
        try:
            return numpy_dtype(dtype)
        except (ValueError, TypeError):
            pass
    raise BadRequest(
        f"input {name!r} has dtype {str(dtype)[:20]!r}; use a numpy dtype name such as "
        "float32, int64, bool or string",
        field=name,
    )


def decode(
    name: str, raw: bytes | memoryview, dtype: np.dtype[Any], shape: tuple[int, ...]
) -> np.ndarray:
    """The array `raw` holds, refused (400, naming the input) when its size disagrees with `shape`."""
    count = math.prod(shape)
    if dtype.kind == "O":
        return _decode_strings(name, raw, count).reshape(shape)
    itemsize = 1 if dtype.kind == "b" else dtype.itemsize
    if len(raw) != count * itemsize:
        raise BadRequest(
            f"input {name!r} carries {len(raw)} bytes; shape {list(shape)} of {dtype.name} "
            f"needs {count * itemsize}",
            field=name,
        )
    if dtype.kind == "b":
        octets = np.frombuffer(raw, dtype=np.uint8)
        if octets.size and octets.max() > 1:
            raise BadRequest(
                f"input {name!r} is bool but holds a byte other than 0 or 1", field=name
            )
        return octets.astype(bool).reshape(shape)
    return (
        np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)
    )


def _decode_strings(name: str, raw: bytes | memoryview, count: int) -> np.ndarray:
    view = memoryview(raw)
    out = np.empty(count, dtype=object)
    pos = 0
    for i in range(count):
        if pos + 4 > len(view):
            raise BadRequest(
                f"input {name!r} ends after {i} of its {count} strings; each string is a "
                "4-byte little-endian length then its bytes",
                field=name,
            )
        (length,) = _LENGTH.unpack_from(view, pos)
        pos += 4
        if pos + length > len(view):
            raise BadRequest(
                f"input {name!r}: string {i} claims {length} bytes, only {len(view) - pos} remain",
                field=name,
            )
        out[i] = bytes(view[pos : pos + length])
        pos += length
    if pos != len(view):
        raise BadRequest(
            f"input {name!r} has {len(view) - pos} bytes after its {count} strings; "
            "its shape or its data is wrong",
            field=name,
        )
    return out


def encode(value: np.ndarray) -> bytes:
    """An output as raw little-endian bytes (strings length-prefixed)."""
    if value.dtype.kind in "OSU":
        parts: list[bytes] = []
        for item in value.ravel().tolist():
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    if value.dtype.kind == "b":
        return np.ascontiguousarray(value, dtype=np.uint8).tobytes()
    return np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()


def dtype_name(value: np.ndarray) -> str:
    """The manifest-style name of an output's dtype ("string" for TensorFlow's tf.string)."""
    return "string" if value.dtype.kind in "OSU" else value.dtype.name
