"""A fault-injecting HTTP proxy to put in front of an S3 endpoint, for the reliability tests.

Each request is forwarded to the upstream server; a `Rule` whose path fragment matches can
replace or damage the answer instead: an S3 error (503 SlowDown, 500 InternalError), a
connection reset mid-body, a body cut short, flipped bytes, a stall or a slow trickle.
Every request is counted by path, so a test can say how often each chunk was asked for.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

Fault = Literal["slowdown", "internal", "reset", "truncate", "flip", "stall", "slow"]

_ERRORS: dict[str, tuple[int, str, str]] = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}
_CHECKSUM = "x-amz-checksum"
# Hop-by-hop headers are the proxy's own business, never forwarded.
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Rule:
    """Damage the answers to requests whose path contains `path`.

    `times` matching requests are damaged (None: all of them), after letting the first
    `skip` through untouched. `seconds` is how long a stall lasts, or how long a slow body
    takes to trickle out.
    """

    fault: Fault
    path: str = ""
    method: str = "GET"
    times: int | None = 1
    skip: int = 0
    seconds: float = 0.0
    seen: int = field(default=0, init=False)
    applied: int = field(default=0, init=False)

    def take(self, method: str, path: str) -> bool:
        if method != self.method or self.path not in path:
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.applied >= self.times):
            return False
        self.applied += 1
        return True


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients killed mid-request (the SIGKILL tests) reset their connections: expected.
        pass


def _s3_error(code: str, message: str, path: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{path}</Resource><RequestId>FAULTPROXY</RequestId></Error>"
    ).encode()


class FaultProxy:
    """A threaded HTTP proxy on a free loopback port; `endpoint_url` replaces the upstream's."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname is not None and parts.port is not None
        self._upstream = (parts.hostname, parts.port)
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._closing = threading.Event()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.faults: Counter[tuple[str, str]] = Counter()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host!s}:{port}"

    # ------------------------------------------------------------------ control

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def add(self, *rules: Rule) -> None:
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        """Drop every rule and every count."""
        with self._lock:
            self._rules.clear()
            self.requests.clear()
            self.faults.clear()

    def count(self, fragment: str, method: str = "GET") -> int:
        """Requests so far whose path contains `fragment`."""
        with self._lock:
            return sum(n for (m, p), n in self.requests.items() if m == method and fragment in p)

    def counts(self, fragment: str, method: str = "GET") -> dict[str, int]:
        """Requests per path, for paths containing `fragment`."""
        with self._lock:
            return {p: n for (m, p), n in self.requests.items() if m == method and fragment in p}

    def _pick(self, method: str, path: str) -> Rule | None:
        with self._lock:
            self.requests[(method, path)] += 1
            for rule in self._rules:
                if rule.take(method, path):
                    self.faults[(rule.fault, path)] += 1
                    return rule
        return None

    # ------------------------------------------------------------------ serving

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> tuple[int, list[tuple[str, str]], bytes]:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    conn.putrequest(
                        self.command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    for name, value in self.headers.items():
                        if name.lower() not in _HOP:
                            conn.putheader(name, value)
                    conn.endheaders(body or None)
                    resp = conn.getresponse()
                    data = resp.read()
                    # A HEAD answer keeps the upstream's length: it describes a body not sent.
                    drop = _HOP if self.command == "HEAD" else _HOP | {"content-length"}
                    headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in drop]
                    return resp.status, headers, data
                finally:
                    conn.close()

            def _send_head(self, status: int, headers: list[tuple[str, str]], length: int) -> None:
                self.send_response_only(status)
                for k, v in headers:
                    self.send_header(k, v)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(length))
                self.end_headers()

            def _abort(self, reset: bool) -> None:
                self.wfile.flush()
                if reset:
                    # SO_LINGER with a zero timeout makes close() send RST, not FIN.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                else:
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                self.connection.close()

            def _serve(self) -> None:
                rule = proxy._pick(self.command, self.path)
                if rule is not None and rule.fault in _ERRORS:
                    status, code, message = _ERRORS[rule.fault]
                    body = _s3_error(code, message, self.path)
                    self._send_head(status, [("Content-Type", "application/xml")], len(body))
                    self.wfile.write(body)
                    return
                if rule is not None and rule.fault == "stall":
                    # Say nothing until the client's read timeout has long passed.
                    proxy._closing.wait(rule.seconds)
                    self._abort(reset=False)
                    return
                status, headers, data = self._forward()
                if rule is None or status >= 300:
                    self._send_head(status, headers, len(data))
                    self.wfile.write(data)
                    return
                if rule.fault == "flip":
                    # Without its checksum headers botocore cannot notice: the damage reaches
                    # preheat's own hash check, as from a store that keeps no checksums.
                    headers = [(k, v) for k, v in headers if not k.lower().startswith(_CHECKSUM)]
                    damaged = bytearray(data)
                    for i in range(0, len(damaged), max(1, len(damaged) // 7)):
                        damaged[i] ^= 0xFF
                    self._send_head(status, headers, len(damaged))
                    self.wfile.write(bytes(damaged))
                elif rule.fault in ("reset", "truncate"):
                    # The header promises the whole body; only half of it ever comes.
                    self._send_head(status, headers, len(data))
                    self.wfile.write(data[: len(data) // 2])
                    self._abort(reset=rule.fault == "reset")
                elif rule.fault == "slow":
                    self._send_head(status, headers, len(data))
                    pieces = 20
                    step = max(1, -(-len(data) // pieces))
                    for i in range(0, len(data), step):
                        self.wfile.write(data[i : i + step])
                        self.wfile.flush()
                        if proxy._closing.wait(rule.seconds / pieces):
                            break

            def _safe(self) -> None:
                try:
                    self._serve()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _safe

        return Handler

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    """Poll a zero-argument callable until it is true or `timeout` passes."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
