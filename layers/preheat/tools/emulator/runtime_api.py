"""The Lambda Runtime API that one environment's awslambdaric talks to."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

import orjson

from preheat.tools.emulator._http import Handler, Server

if TYPE_CHECKING:
    from preheat.tools.emulator.sandbox import Sandbox

PREFIX = "/2018-06-01/runtime"
# Lambda refuses a function response over 6 MB; the runtime sees 413.
RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024
_INVOCATION = re.compile(rf"^{PREFIX}/invocation/([^/]+)/(response|error)$")
_ACCEPTED = orjson.dumps({"status": "OK"})
_JSON = {"Content-Type": "application/json"}


class RuntimeServer(Server):
    def __init__(self, host: str, sandbox: Sandbox) -> None:
        super().__init__((host, 0), RuntimeHandler)
        self.sandbox = sandbox


class RuntimeHandler(Handler):
    @property
    def sandbox(self) -> Sandbox:
        return cast(RuntimeServer, self.server).sandbox

    def do_GET(self) -> None:
        if self.path == f"{PREFIX}/restore/next":
            self._restore_next()
            return
        if self.path != f"{PREFIX}/invocation/next":
            self._error(404, "UnknownPath", f"no such Runtime API path: {self.path}")
            return
        inv = self.sandbox.next_invocation()
        if inv is None:
            # The environment is being torn down; the process is about to be killed.
            self.close_connection = True
            self._error(500, "Runtime.Shutdown", "the execution environment is shutting down")
            return
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
            "Lambda-Runtime-Trace-Id": inv.trace_id,
        }
        if inv.client_context:
            headers["Lambda-Runtime-Client-Context"] = inv.client_context
        self.respond(200, inv.payload, headers)

    def _restore_next(self) -> None:
        # SnapStart: the runtime's INIT is done and it waits here to be restored; the
        # answer (200, no body) is the restore, and its after-restore hooks run next.
        if not self.sandbox.restore_next():
            self.close_connection = True
            self._error(500, "Runtime.Shutdown", "the execution environment is shutting down")
            return
        self.respond(200)

    def do_POST(self) -> None:
        body = self.read_body(RESPONSE_LIMIT_BYTES)
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        if self.path == f"{PREFIX}/init/error":
            self.sandbox.post_init_error(body or b"", error_type)
            self.respond(202, _ACCEPTED, _JSON)
            return
        if self.path == f"{PREFIX}/restore/error":
            # An after-restore hook failed; the runtime exits right after this answer.
            self.sandbox.post_restore_error(body or b"", error_type)
            self.respond(202, _ACCEPTED, _JSON)
            return
        match = _INVOCATION.match(self.path)
        if match is None:
            self._error(404, "UnknownPath", f"no such Runtime API path: {self.path}")
            return
        request_id, kind = match.groups()
        if body is None:
            self.sandbox.post_oversized(request_id)
            self._error(
                413,
                "RequestEntityTooLarge",
                f"Exceeded maximum allowed payload size ({RESPONSE_LIMIT_BYTES} bytes).",
            )
            return
        accepted = (
            self.sandbox.post_response(request_id, body)
            if kind == "response"
            else self.sandbox.post_error(request_id, body, error_type)
        )
        if accepted:
            self.respond(202, _ACCEPTED, _JSON)
        else:
            self._error(400, "InvalidRequestID", f"no invocation {request_id} is in progress")

    def _error(self, status: int, error_type: str, message: str) -> None:
        self.respond(
            status, orjson.dumps({"errorType": error_type, "errorMessage": message}), _JSON
        )
