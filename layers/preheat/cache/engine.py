"""The seam between the S3 tier and the HTTP client that GETs its objects.

An engine makes one attempt per call: preheat's own retries, backoff and stall limit
(see s3.py) stay the only ones, whichever client carries the bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Missing(Exception):
    """The object (or its bucket) does not exist: S3 answered 404. Retrying cannot help."""


class Engine(ABC):
    """GET whole objects from S3; one instance per process, shared by the fetch threads."""

    name: str

    @abstractmethod
    def get(self, bucket: str, key: str) -> memoryview:
        """The object's bytes; raises Missing, Retryable, or an error retrying cannot mend.

        A memoryview, so that hashing and pwrite take the client's own buffer uncopied
        (both release the interpreter lock on buffers this large).
        """
