"""What every serving protocol shares: the request it reads, the reply it builds, the model.

A protocol module reads a `Call` (an HTTP request from a Function URL or API Gateway, or a
direct invocation's event), asks `Served` for a prediction with named numpy arrays, and
answers with a `Reply` in its own form. The transport (HTTP response or a plain dict for
the Invoke API) is applied afterwards, by the router.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson

from preheat.artifact.manifest import Signature
from preheat.exceptions import BadRequest
from preheat.runtimes.base import Model
from preheat.runtimes.validate import coerce_inputs
from preheat.serving.events import HttpRequest

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"


@dataclass
class Call:
    """One request: an HTTP request, or the event of a direct invocation (`http` is None)."""

    http: HttpRequest | None
    event: Any = None
    _payload: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    def json(self, what: str = "the request body") -> Any:
        """The request's JSON (the event itself for a direct invocation), parsed once."""
        if not self._parsed:
            if self.http is None:
                self._payload = self.event
            else:
                self._payload = parse_json(self.http.body, what)
            self._parsed = True
        return self._payload


def parse_json(raw: bytes, what: str) -> Any:
    if not raw.strip():
        raise BadRequest(f"{what} is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None


@dataclass
class Reply:
    """A protocol's answer: a JSON payload, or a binary body with its own headers."""

    status: int
    payload: Any = None
    binary: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Predictor(Protocol):
    """A model that can also answer on a signature other than its serving one."""

    def predict_signature(
        self, key: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]: ...


class Served:
    """The loaded model as the protocols see it: name, version, signatures, predict."""

    def __init__(self, model: Model, *, labels: tuple[str, ...] = ()) -> None:
        self.model = model
        manifest = model.manifest
        self.name = manifest.name
        self.version = manifest.version
        self.runtime = manifest.runtime
        # Version labels this function answers to (the alias it was deployed with).
        self.labels = labels
        self.default_key = model.signature.key
        sigs = {model.signature.key: model.signature}
        # Only a runtime that can bind another signature offers the artifact's others.
        if hasattr(model, "predict_signature"):
            sigs.update({s.key: s for s in manifest.signatures})
        self.signatures: dict[str, Signature] = sigs
        # The model call's own time in the last prediction (validation and encoding apart),
        # so the handler's log can show what a request costs beyond the model.
        self.last_predict_ms: float | None = None

    def signature(self, key: str | None) -> Signature:
        if not key:
            return self.signatures[self.default_key]
        sig = self.signatures.get(key)
        if sig is None:
            raise BadRequest(
                f"signature {key!r} is not served by {self.name}/{self.version}; it serves "
                f"{', '.join(map(repr, self.signatures))}",
                field="signature_name",
            )
        return sig

    def predict(
        self, inputs: Any, key: str | None = None
    ) -> tuple[Signature, dict[str, np.ndarray]]:
        """Validate `inputs` (name → array-like) against a signature and run the model."""
        sig = self.signature(key)
        arrays = coerce_inputs(sig, inputs)
        start = time.perf_counter()
        if sig.key == self.default_key:
            outputs = self.model.predict(arrays)
        else:
            predictor: Predictor = self.model  # type: ignore[assignment]
            outputs = predictor.predict_signature(sig.key, arrays)
        self.last_predict_ms = (time.perf_counter() - start) * 1000
        return sig, outputs


def select_outputs(
    sig: Signature, outputs: Mapping[str, np.ndarray], wanted: list[str] | None
) -> dict[str, np.ndarray]:
    """The outputs asked for, in the signature's order when none are named."""
    if wanted is None:
        return {t.name: outputs[t.name] for t in sig.outputs if t.name in outputs}
    chosen: dict[str, np.ndarray] = {}
    for name in wanted:
        if name not in outputs:
            raise BadRequest(
                f"unknown output {name!r}; the model's outputs are "
                f"{', '.join(repr(t.name) for t in sig.outputs)}",
                field=name,
            )
        chosen[name] = outputs[name]
    return chosen


def text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def b64_object(value: object) -> dict[str, str]:
    data = value if isinstance(value, bytes) else str(value).encode()
    return {"b64": base64.b64encode(data).decode("ascii")}


def jsonable(value: np.ndarray, *, b64: bool = False) -> Any:
    """An array orjson can write: numbers as they are, strings as text or `{"b64": ...}`."""
    if value.dtype.kind in "OSU":
        if not value.size:
            return np.empty(value.shape).tolist()
        convert = b64_object if b64 else text
        return np.vectorize(convert, otypes=[object])(value).tolist()
    if not value.flags.c_contiguous or value.dtype.byteorder == ">":
        return np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("="))
    return value


def decode_b64_leaves(name: str, value: Any) -> Any:
    """Nested lists whose `{"b64": ...}` leaves become bytes (TF Serving's form for strings)."""
    if isinstance(value, Mapping):
        if set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(
                    f"input {name!r} holds a b64 value that is not base64", field=name
                ) from None
        return value
    if isinstance(value, list):
        return [decode_b64_leaves(name, v) for v in value]
    return value


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
