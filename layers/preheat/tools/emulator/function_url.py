"""A function's URL on a port of its own: HTTP requests in, payload-format-2.0 events out.

Each request becomes the event a Lambda function URL sends (lower-case headers, cookies
apart, `rawPath`, `rawQueryString`, `requestContext.http`, a base64 body for binary content
types) and goes through the emulator's own `invoke`; the function's answer is mapped back
as AWS maps it: a dict with `statusCode` gives status, headers, cookies and body (decoded
when `isBase64Encoded`), anything else is a 200 `application/json` holding the payload.
Auth is NONE: deployed URLs use AWS_IAM and SigV4-signed requests.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
import uuid
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, urlsplit

import orjson

from preheat import constants as c
from preheat.exceptions import ConfigurationError
from preheat.tools.emulator._http import Handler, Server
from preheat.tools.emulator.errors import ApiError

if TYPE_CHECKING:
    from preheat.tools.emulator.emulator import Emulator

# Bodies of these content types reach the function as text; every other body (or none
# declared) as base64 with isBase64Encoded, as function URLs do.
_TEXT_TYPES = (
    "application/json",
    "application/javascript",
    "application/xml",
    "application/yaml",
    "application/x-www-form-urlencoded",
)


def is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    kind = content_type.split(";")[0].strip().lower()
    return kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml"))


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated names become one comma-joined value, as function URLs pass them."""
    out: dict[str, str] = {}
    for k, v in pairs:
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


def build_event(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str,
    domain: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload-format-2.0 event a function URL sends for one HTTP request."""
    url = urlsplit(target)
    pairs = [(k.lower(), v) for k, v in headers]
    cookies = [
        part.strip() for k, v in pairs if k == "cookie" for part in v.split(";") if part.strip()
    ]
    hdrs = _joined((k, v) for k, v in pairs if k != "cookie")
    when = time.time() if now is None else now
    url_id = domain.split(".")[0]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path or "/",
        "rawQueryString": url.query,
        "headers": hdrs,
    }
    if cookies:
        event["cookies"] = cookies
    if url.query:
        event["queryStringParameters"] = _joined(parse_qsl(url.query, keep_blank_values=True))
    event["requestContext"] = {
        "accountId": "anonymous",
        "apiId": url_id,
        "domainName": domain,
        "domainPrefix": url_id,
        "http": {
            "method": method,
            "path": url.path or "/",
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": hdrs.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(when)),
        "timeEpoch": int(when * 1000),
    }
    binary = not is_text(hdrs.get("content-type"))
    if body:
        event["body"] = (
            base64.b64encode(body).decode("ascii")
            if binary
            else body.decode("utf-8", errors="replace")
        )
    event["isBase64Encoded"] = bool(body) and binary
    return event


def map_response(payload: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of the HTTP response for a function's answer."""
    try:
        answer = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict) or "statusCode" not in answer:
        return 200, [("Content-Type", "application/json")], payload
    status = answer.get("statusCode")
    if not isinstance(status, int) or not 100 <= status <= 599:
        return 502, [("Content-Type", "application/json")], b'{"Message":"Internal Server Error"}'
    headers = [(str(k), str(v)) for k, v in (answer.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(v)) for v in answer.get("cookies") or []]
    body = answer.get("body")
    if body is None:
        raw = b""
    elif not isinstance(body, str):
        raw = orjson.dumps(body)
    elif answer.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body)
        except (binascii.Error, ValueError):
            return (
                502,
                [("Content-Type", "application/json")],
                b'{"Message":"Internal Server Error"}',
            )
    else:
        raw = body.encode()
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return status, headers, raw


class FunctionUrlServer(Server):
    def __init__(self, address: tuple[str, int], emulator: Emulator, function: str) -> None:
        super().__init__(address, FunctionUrlHandler)
        self.emulator = emulator
        self.function = function


class FunctionUrlHandler(Handler):
    server_version = "preheat-function-url"

    def _serve(self) -> None:
        server = cast(FunctionUrlServer, self.server)
        body = self.read_body(c.LAMBDA_PAYLOAD_LIMIT_BYTES)
        if body is None:
            self._send(413, [], _message("Request must be smaller than 6291456 bytes"))
            return
        host = self.headers.get("Host") or "localhost"
        event = build_event(
            self.command,
            self.path,
            self.headers.items(),
            body,
            source_ip=self.client_address[0],
            domain=host.split(":")[0],
        )
        payload = orjson.dumps(event)
        if len(payload) > c.LAMBDA_PAYLOAD_LIMIT_BYTES:
            # base64 makes a binary body a third larger: the limit is on the event.
            self._send(413, [], _message("Request must be smaller than 6291456 bytes"))
            return
        try:
            result = server.emulator.invoke(server.function, payload)
        except ApiError as exc:
            status = 429 if exc.status == 429 else 502
            self._send(status, [], _message(HTTPStatus(status).phrase))
            return
        if result.function_error:
            self._send(502, [], _message("Internal Server Error"))
            return
        status, headers, raw = map_response(result.body)
        self._send(status, headers, b"" if self.command == "HEAD" else raw)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        if not headers:
            headers = [("Content-Type", "application/json")]
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() != "content-length"]
        lines.append(f"x-amzn-RequestId: {uuid.uuid4()}")
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve


def _message(text: str) -> bytes:
    return orjson.dumps({"Message": text})


class FunctionUrl:
    """`with FunctionUrl(emu, "inference", port=8081) as url:` serves `url.url` until closed."""

    def __init__(
        self, emulator: Emulator, function: str, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if function not in emulator.functions:
            raise ConfigurationError(
                "--url",
                function,
                f"name a function the emulator serves: {', '.join(emulator.functions)}",
            )
        try:
            self._server = FunctionUrlServer((host, port), emulator, function)
        except OSError as exc:
            raise ConfigurationError(
                "--url",
                f"{function}={port}",
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another port",
            ) from None
        self.function = function
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"function-url-{function}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> FunctionUrl:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> FunctionUrl:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
