"""How the benchmark reads one invoke's answer (a fake client stands in for boto3's)."""

from __future__ import annotations

import io
from typing import Any

from botocore.exceptions import EndpointConnectionError

from preheat.tools.bench.measure import invoke as _invoke


class FakeLambda:
    def __init__(
        self, payload: bytes = b"", error: str | None = None, raises: bool = False
    ) -> None:
        self.payload, self.error, self.raises = payload, error, raises

    def invoke(self, **kw: Any) -> dict[str, Any]:
        if self.raises:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        resp: dict[str, Any] = {
            "Payload": io.BytesIO(self.payload),
            "ResponseMetadata": {"RequestId": "r-1"},
        }
        if self.error:
            resp["FunctionError"] = self.error
        return resp


def test_an_answer_with_outputs_is_a_success() -> None:
    call = _invoke(FakeLambda(b'{"outputs": {"y": [[1.0]]}}'), "f", b"{}")  # type: ignore[arg-type]
    assert (
        call.error is None and call.request_id == "r-1" and call.body["outputs"] == {"y": [[1.0]]}
    )
    assert call.ms >= 0


def test_a_function_error_carries_type_and_message() -> None:
    body = b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named x"}'
    call = _invoke(FakeLambda(body, error="Unhandled"), "f", b"{}")  # type: ignore[arg-type]
    assert call.error == "Runtime.ImportModuleError: No module named x"


def test_a_bad_request_answer_is_an_error_not_outputs() -> None:
    body = b'{"error": {"message": "input x: expected shape (None, 4)"}, "statusCode": 400}'
    call = _invoke(FakeLambda(body), "f", b"{}")  # type: ignore[arg-type]
    assert call.error is not None and "expected shape" in call.error


def test_a_transport_failure_is_an_error_on_the_call_not_a_crash() -> None:
    call = _invoke(FakeLambda(raises=True), "f", b"{}")  # type: ignore[arg-type]
    assert call.error is not None and call.error.startswith(
        "the invoke failed: EndpointConnectionError"
    )
