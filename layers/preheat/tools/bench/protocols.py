"""Warm requests in the serving protocols clients already speak, through the function's URL.

After a cold start's JSON requests (Invoke API), the same inputs go to the same environment
as Open Inference Protocol requests with binary tensors and as TF Serving `instances`, over
one keep-alive connection to the function's URL. Each answer is checked against the answer
the function gave in JSON for the same input: a protocol that answers wrongly is an error,
not a fast figure. The model's own time per request comes from the function's log.
"""

from __future__ import annotations

import base64
import http.client
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from preheat.exceptions import BadRequest
from preheat.serving.protocols import oip, tensors
from preheat.tools.bench import logs, parity
from preheat.tools.bench.records import ProtocolRun

if TYPE_CHECKING:
    from preheat.tools.emulator import Emulator

JSON, OIP_BINARY, TFSERVING = "json", "oip-binary", "tfserving"
PROTOCOLS = (JSON, OIP_BINARY, TFSERVING)
# The name the function logs for each (see preheat.serving.protocols).
LOGGED = {JSON: "native", OIP_BINARY: "oip", TFSERVING: "tfserving"}
# The same input answered in two protocols must agree to within float32 rounding: every
# protocol carries exact float32 values both ways, so any larger difference is a bug.
AGREEMENT_REL = 1e-6
TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


def oip_binary(model: str, inputs: Mapping[str, np.ndarray]) -> Request:
    """`/v2/models/{model}/infer` with every input as raw bytes after the JSON header and
    every output asked back as raw bytes (the binary tensor data extension)."""
    tails = [tensors.encode(a) for a in inputs.values()]
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": list(a.shape),
                    "datatype": oip.datatype(tensors.dtype_name(a)),
                    "parameters": {"binary_data_size": len(raw)},
                }
                for (name, a), raw in zip(inputs.items(), tails, strict=True)
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    return Request(
        f"/v2/models/{model}/infer",
        b"".join([header, *tails]),
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
    )


def tf_serving(model: str, inputs: Mapping[str, np.ndarray]) -> Request:
    """`/v1/models/{model}:predict` in the row format: one instance per example."""
    cols = {name: _tf_value(a) for name, a in inputs.items()}
    if len(cols) == 1:
        (instances,) = cols.values()
    else:
        rows = len(next(iter(inputs.values())))
        instances = [{name: col[i] for name, col in cols.items()} for i in range(rows)]
    return Request(
        f"/v1/models/{model}:predict",
        orjson.dumps({"instances": instances}),
        {"Content-Type": "application/json"},
    )


def _b64(value: object) -> dict[str, str]:
    data = value if isinstance(value, bytes) else str(value).encode()
    return {"b64": base64.b64encode(data).decode("ascii")}


def _tf_value(a: np.ndarray) -> Any:
    """Nested lists; strings as TF Serving's `{"b64": ...}` objects, exact for any bytes."""
    if a.dtype.kind in "OSU":
        return np.vectorize(_b64, otypes=[object])(a).tolist()
    return a.tolist()


def read_oip_binary(body: bytes, header_length: str | None, like: parity.Outputs) -> parity.Outputs:
    """The outputs of a binary OIP answer, as arrays of the reference's dtypes."""
    if header_length is None:
        doc = orjson.loads(body)
        raise ValueError(f"the answer is not binary: {str(doc)[:200]}")
    split = int(header_length)
    doc = orjson.loads(body[:split])
    offset, got = split, {}
    for out in doc["outputs"]:
        size = out["parameters"]["binary_data_size"]
        ref = like.get(out["name"])
        dtype = ref.dtype if ref is not None else np.dtype(oip.DATATYPES[out["datatype"]])
        raw = body[offset : offset + size]
        got[out["name"]] = tensors.decode(out["name"], raw, dtype, tuple(out["shape"]))
        offset += size
    return got


def read_tf_serving(body: bytes, like: parity.Outputs) -> parity.Outputs:
    """The outputs of a row-format answer (`predictions`), as arrays of the reference's dtypes."""
    doc = orjson.loads(body)
    predictions = doc["predictions"]
    if len(like) == 1:
        return parity.from_json({next(iter(like)): predictions}, like)
    columns = {name: [row[name] for row in predictions] for name in like}
    return parity.from_json(columns, like)


def agrees(a: parity.Outputs, b: parity.Outputs) -> str | None:
    """Why two answers to the same input disagree, or None."""
    if set(a) != set(b):
        return f"outputs {sorted(a)} where JSON gave {sorted(b)}"
    for name, x in a.items():
        y = b[name]
        if x.shape != y.shape:
            return f"output {name!r} has shape {list(x.shape)}, JSON's {list(y.shape)}"
        if x.dtype.kind in "biuf":
            scale = max(float(np.max(np.abs(y))) if y.size else 0.0, 1e-30)
            diff = float(np.max(np.abs(x.astype("float64") - y))) if x.size else 0.0
            if diff > AGREEMENT_REL * scale:
                return f"output {name!r} differs from JSON's answer by {diff:.3g}"
        elif not np.array_equal(x, y):
            return f"output {name!r} differs from JSON's answer"
    return None


class UrlSession:
    """One keep-alive HTTP/1.1 connection to a function's URL."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        self._conn = http.client.HTTPConnection(host, int(port or 80), timeout=TIMEOUT_S)

    def send(self, method: str, req: Request) -> tuple[float, int, str | None, bytes]:
        """Milliseconds from sending to the answer's last byte, status, OIP header, body."""
        start = time.perf_counter()
        self._conn.request(method, req.path, body=req.body or None, headers=dict(req.headers))
        resp = self._conn.getresponse()
        body = resp.read()
        ms = (time.perf_counter() - start) * 1000
        return ms, resp.status, resp.getheader("Inference-Header-Content-Length"), body

    def close(self) -> None:
        self._conn.close()


# An answer's body and its Inference-Header-Content-Length → outputs like the reference's.
Reader = Callable[[bytes, str | None, parity.Outputs], parity.Outputs]


def _read_tf(body: bytes, _header: str | None, like: parity.Outputs) -> parity.Outputs:
    return read_tf_serving(body, like)


class ProtocolBench:
    """The URL protocols' warm requests for one cold start's environment, with its log."""

    def __init__(
        self,
        emu: Emulator,
        inputs: Sequence[parity.Inputs],
        expected: Sequence[parity.Outputs],
        warm_requests: int,
    ) -> None:
        self.emu = emu
        self.inputs = inputs
        self.expected = expected
        self.warm_requests = warm_requests

    def measure(
        self,
        fname: str,
        env_id: str,
        json_run: ProtocolRun,
        json_answers: Mapping[int, parity.Outputs],
        first_request_id: str | None,
    ) -> list[ProtocolRun]:
        """`json_run` completed from the log, then a run per URL protocol."""
        from preheat.tools.emulator.function_url import FunctionUrl

        json_run.predict_ms = self._predict_ms(env_id, JSON, skip=first_request_id)
        runs = [json_run]
        with FunctionUrl(self.emu, fname) as url:
            session = UrlSession(url.url)
            try:
                model, why = self._served_name(session)
                makers: dict[str, tuple[Callable[..., Request], Reader]] = {
                    OIP_BINARY: (oip_binary, read_oip_binary),
                    TFSERVING: (tf_serving, _read_tf),
                }
                for protocol, (make, read) in makers.items():
                    run = ProtocolRun(protocol)
                    if model is None:
                        run.error = why
                    else:
                        self._requests(session, run, model, make, read, json_answers)
                        run.predict_ms = self._predict_ms(env_id, protocol)
                    runs.append(run)
            finally:
                session.close()
        return runs

    @staticmethod
    def _served_name(session: UrlSession) -> tuple[str | None, str]:
        """The model's name as the function serves it (a slimmed artifact has its own)."""
        try:
            _, status, _, body = session.send("GET", Request("/"))
            name = orjson.loads(body)["model"]["name"] if status == 200 else None
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as exc:
            return None, f"GET / on the function's URL failed: {type(exc).__name__}: {exc}"
        if not isinstance(name, str):
            return None, f"GET / on the function's URL answered {status}: {body[:200]!r}"
        return name, ""

    def _requests(
        self,
        session: UrlSession,
        run: ProtocolRun,
        model: str,
        make: Callable[..., Request],
        read: Reader,
        json_answers: Mapping[int, parity.Outputs],
    ) -> None:
        answers: list[tuple[int, parity.Outputs]] = []
        for k in range(1, self.warm_requests + 1):
            j = k % len(self.inputs)
            req = make(model, self.inputs[j])
            try:
                ms, status, header, body = session.send("POST", req)
                if status != 200:
                    raise ValueError(f"HTTP {status}: {body[:200]!r}")
                got = read(body, header, self.expected[j])
            except (
                OSError,
                http.client.HTTPException,
                BadRequest,
                ValueError,
                KeyError,
                TypeError,
            ) as exc:
                run.error = f"request {k}: {type(exc).__name__}: {exc}"
                return
            reason = agrees(got, json_answers[j]) if j in json_answers else None
            if reason is not None:
                run.error = f"request {k}: {reason}"
                return
            run.request_bytes.append(len(req.body))
            run.warm_ms.append(round(ms, 3))
            answers.append((j, got))
        if answers:
            run.parity = parity.compare(
                [self.expected[j] for j, _ in answers], [got for _, got in answers]
            )

    def _predict_ms(self, env_id: str, protocol: str, skip: str | None = None) -> list[float]:
        """The model's times logged for a protocol's requests, read right after them (the
        emulator keeps the last 256 KB of a log: with many requests, the latest ones)."""
        lines = logs.predictions(self.emu.log(env_id))
        wanted = LOGGED[protocol]
        return [
            round(p.predict_ms, 3)
            for p in lines
            if p.protocol == wanted and (skip is None or p.request_id != skip)
        ]
