"""One invoke in flight: the event going to the runtime and the answer coming back."""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field

from preheat.tools.emulator.records import Outcome


def trace_id() -> str:
    """An X-Ray trace header as Lambda sends it; awslambdaric crashes without one."""
    return f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};Parent={os.urandom(8).hex()};Sampled=0"


@dataclass(eq=False)
class Invocation:
    payload: bytes
    function_arn: str
    invocation_type: str = "RequestResponse"
    client_context: str | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    trace_id: str = field(default_factory=trace_id)
    deadline_ms: int = 0
    # Set once, by whichever of response, error, timeout or crash comes first.
    outcome: Outcome | None = None
    body: bytes = b""
    error_type: str | None = None
    finished_at: float = 0.0
    # Handed to the runtime by /next: an event never handed over can go to another
    # environment when this one's runtime exits first.
    delivered: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def finish(self, outcome: Outcome, body: bytes, error_type: str | None = None) -> bool:
        with self._lock:
            if self.outcome is not None:
                return False
            self.outcome = outcome
            self.body = body
            self.error_type = error_type
            self.finished_at = time.perf_counter()
        self.done.set()
        return True

    def again(self) -> Invocation:
        """The same event, not yet sent anywhere: for another environment to run."""
        return Invocation(
            payload=self.payload,
            function_arn=self.function_arn,
            invocation_type=self.invocation_type,
            client_context=self.client_context,
            request_id=self.request_id,
            trace_id=self.trace_id,
        )

    @property
    def function_error(self) -> bool:
        return self.outcome not in (None, "success")
