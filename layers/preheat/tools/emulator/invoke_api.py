"""The Lambda Invoke API, as boto3's `lambda` client speaks it, and the control plane beside it."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from preheat import constants as c
from preheat.tools.emulator._http import Handler, Server
from preheat.tools.emulator.control_plane import ControlPlane
from preheat.tools.emulator.errors import ApiError, too_large, unknown_operation
from preheat.tools.emulator.versions import function_ref

if TYPE_CHECKING:
    from preheat.tools.emulator.emulator import Emulator

_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations/?$")
# Lambda raised the asynchronous payload limit from 256 KB to 1 MB in 2025.
EVENT_PAYLOAD_LIMIT_BYTES = 1024 * 1024
# Control-plane requests carry a few fields of JSON.
CONTROL_BODY_LIMIT_BYTES = 1024 * 1024


class InvokeServer(Server):
    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        super().__init__(address, InvokeHandler)
        self.emulator = emulator
        self.control_plane = ControlPlane(emulator)


class InvokeHandler(Handler):
    @property
    def emulator(self) -> Emulator:
        return cast(InvokeServer, self.server).emulator

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        match = _INVOKE.match(url.path)
        if match is None:
            self._control()
            return
        invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        limit = (
            EVENT_PAYLOAD_LIMIT_BYTES
            if invocation_type == "Event"
            else c.LAMBDA_PAYLOAD_LIMIT_BYTES
        )
        body = self.read_body(limit)
        try:
            if body is None:
                raise too_large(limit)
            name, qualifier = function_ref(
                unquote(match.group(1)), parse_qs(url.query).get("Qualifier", [None])[0]
            )
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

    def _control(self) -> None:
        """A control-plane request: GetFunction, PublishVersion, the alias operations..."""
        url = urlsplit(self.path)
        body = self.read_body(CONTROL_BODY_LIMIT_BYTES)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        # Each path segment is decoded on its own: an ARN's colons may come as %3A.
        path = "/".join(unquote(part) for part in url.path.split("/"))
        try:
            if body is None:
                raise too_large(CONTROL_BODY_LIMIT_BYTES)
            status, answer = self.server_control.handle(self.command, path, query, body)
        except ApiError as exc:
            self._fail(exc)
            return
        except Exception as exc:
            self._fail(ApiError(500, "ServiceException", f"{type(exc).__name__}: {exc}"))
            return
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        if answer is None:
            self.respond(status, b"", headers)
            return
        headers["Content-Type"] = "application/json"
        self.respond(status, orjson.dumps(answer), headers)

    @property
    def server_control(self) -> ControlPlane:
        return cast(InvokeServer, self.server).control_plane

    def _unknown(self) -> None:
        self.read_body(0)
        exc = unknown_operation()
        self.respond(exc.status, exc.body(), exc.headers())

    do_GET = do_PUT = do_DELETE = _control
    do_PATCH = _unknown


def _client_context(raw: str | None) -> str | None:
    """Lambda hands the runtime the decoded JSON of the base64 X-Amz-Client-Context."""
    if not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return raw
