"""An environment's log: the runtime's stdout/stderr plus the emulator's own START/END/REPORT lines."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable

LogSink = Callable[[str, bytes], None]

_KEEP_BYTES = 256 * 1024


class LogBuffer:
    """The last 256 KB of an environment's log, addressed by absolute byte offsets."""

    def __init__(self, env_id: str, sink: LogSink | None = None) -> None:
        self.env_id = env_id
        self.lock = threading.Lock()
        self._buf = bytearray()
        self._start = 0
        self._sink = sink

    @property
    def end(self) -> int:
        with self.lock:
            return self._start + len(self._buf)

    def write(self, data: bytes) -> None:
        with self.lock:
            self._append(data)

    def _append(self, data: bytes) -> None:
        if not data:
            return
        self._buf += data
        if len(self._buf) > _KEEP_BYTES:
            cut = len(self._buf) - _KEEP_BYTES
            del self._buf[:cut]
            self._start += cut
        if self._sink is not None:
            self._sink(self.env_id, data)

    def since(self, offset: int, limit: int) -> bytes:
        """At most the last `limit` bytes written at or after `offset`."""
        with self.lock:
            begin = max(offset - self._start, 0, len(self._buf) - limit)
            return bytes(self._buf[begin:])

    def text(self) -> str:
        with self.lock:
            return self._buf.decode("utf-8", "replace")

    def follow(self, fd: int) -> Pipe:
        """Copy a pipe into the buffer until it closes, on a thread of its own."""
        return Pipe(self, fd)


class Pipe:
    """One process's output pipe feeding a LogBuffer; `drain()` catches up synchronously."""

    def __init__(self, log: LogBuffer, fd: int) -> None:
        self._log = log
        self._fd = fd
        self._closed = False
        os.set_blocking(fd, False)
        self._thread = threading.Thread(target=self._pump, name=f"log-{log.env_id}", daemon=True)
        self._thread.start()

    def drain(self) -> None:
        """Read whatever the pipe holds now, in order with the pump thread."""
        with self._log.lock:
            self._read_available()

    def _read_available(self) -> None:
        # Called with the log's lock held, so chunks are appended in pipe order.
        while not self._closed:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._closed = True
                os.close(self._fd)
                return
            self._log._append(chunk)

    def _pump(self) -> None:
        while True:
            with self._log.lock:
                if self._closed:
                    return
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.5)
            except (OSError, ValueError):
                return
            if ready:
                with self._log.lock:
                    self._read_available()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
