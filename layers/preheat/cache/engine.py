"""The seam between the S3 tier and the HTTP client that GETs its objects.

An engine makes one attempt per call: preheat's own retries, backoff and stall limit
(see s3.py) stay the only ones, whichever client carries the bytes.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Missing(Exception):
    """The object (or its bucket) does not exist: S3 answered 404. Retrying cannot help."""


@dataclass(frozen=True)
class SentRequest:
    method: str
    url: str


class Events:
    """Observers of the requests an engine sends, registered by botocore's event names
    ("before-send.s3.GetObject"), so instrumentation written for a boto3 client (request
    counters in tests and tools) works on any engine."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[str, list[Callable[..., Any]]] = {}

    def register(self, event: str, handler: Callable[..., Any]) -> None:
        with self._lock:
            self._handlers.setdefault(event, []).append(handler)

    def emit(self, event: str, request: SentRequest) -> None:
        with self._lock:
            handlers = [
                h for name, hs in self._handlers.items() for h in hs if event.startswith(name)
            ]
        for handler in handlers:
            handler(request=request)


class Meta:
    def __init__(self) -> None:
        self.events = Events()


class Engine(ABC):
    """GET whole objects from S3; one instance per process, shared by the fetch threads."""

    name: str

    @abstractmethod
    def get(self, bucket: str, key: str) -> memoryview:
        """The object's bytes; raises Missing, Retryable, or an error retrying cannot mend.

        A memoryview, so that hashing and pwrite take the client's own buffer uncopied
        (both release the interpreter lock on buffers this large).
        """

    # Not abstract: an engine that keeps no connections of its own has nothing to close.
    def close(self) -> None:  # noqa: B027
        """Close this engine's connections (before a SnapStart snapshot: no socket may be
        frozen into it, since every restored copy would share it). The engine is not used
        again afterwards; a new one is made for the next fetch."""
