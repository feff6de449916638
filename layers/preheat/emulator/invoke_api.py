"""The Lambda Invoke API, as boto3's `lambda` client speaks it."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, unquote, urlsplit

from preheat import constants as c
from preheat.emulator._http import Handler, Server
from preheat.emulator.errors import ApiError, too_large, unknown_operation

if TYPE_CHECKING:
    from preheat.emulator.emulator import Emulator

_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations/?$")
# Lambda raised the asynchronous payload limit from 256 KB to 1 MB in 2025.
EVENT_PAYLOAD_LIMIT_BYTES = 1024 * 1024


class InvokeServer(Server):
    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        super().__init__(address, InvokeHandler)
        self.emulator = emulator


def split_function_name(raw: str) -> tuple[str, str | None]:
    """A name, `name:qualifier`, a partial ARN or a full ARN -> (name, qualifier)."""
    parts = raw.split(":")
    if parts[0] == "arn" and len(parts) >= 7:
        return parts[6], (parts[7] if len(parts) > 7 else None)
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2], (parts[3] if len(parts) > 3 else None)
    if len(parts) == 2:
        return parts[0], parts[1]
    return raw, None


class InvokeHandler(Handler):
    @property
    def emulator(self) -> Emulator:
        return cast(InvokeServer, self.server).emulator

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        match = _INVOKE.match(url.path)
        invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        limit = (
            EVENT_PAYLOAD_LIMIT_BYTES
            if invocation_type == "Event"
            else c.LAMBDA_PAYLOAD_LIMIT_BYTES
        )
        body = self.read_body(limit)
        try:
            if match is None:
                raise unknown_operation()
            if body is None:
                raise too_large(limit)
            name, qualifier = split_function_name(unquote(match.group(1)))
            qualifier = parse_qs(url.query).get("Qualifier", [qualifier])[0]
            result = self.emulator.invoke(
                name,
                body,
                invocation_type=invocation_type,
                log_type=self.headers.get("X-Amz-Log-Type"),
                qualifier=qualifier,
                client_context=_client_context(self.headers.get("X-Amz-Client-Context")),
            )
        except ApiError as exc:
            self._fail(exc)
            return
        except Exception as exc:
            # A bug of the emulator's must still give the caller an answer, in AWS's shape.
            self._fail(ApiError(500, "ServiceException", f"{type(exc).__name__}: {exc}"))
            return
        self.respond(result.status, result.body, result.headers())

    def _fail(self, exc: ApiError) -> None:
        headers = exc.headers()
        headers["x-amzn-RequestId"] = str(uuid.uuid4())
        self.respond(exc.status, exc.body(), headers)

    def _unknown(self) -> None:
        self.read_body(0)
        exc = unknown_operation()
        self.respond(exc.status, exc.body(), exc.headers())

    do_GET = do_PUT = do_DELETE = do_PATCH = _unknown


def _client_context(raw: str | None) -> str | None:
    """Lambda hands the runtime the decoded JSON of the base64 X-Amz-Client-Context."""
    if not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return raw
