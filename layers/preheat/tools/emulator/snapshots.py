"""SnapStart's seam: what the emulator asks of an environment to park it after its snapshot.

A snapstarted version keeps environments that ran INIT with
AWS_LAMBDA_INITIALIZATION_TYPE=snap-start and wait on `/runtime/restore/next`; a cold
start of that version takes one and restores it on its first invoke.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class SnapshotFailed(Exception):
    """INIT or a before-snapshot hook failed: the version cannot be snapstarted."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


@runtime_checkable
class Snapshottable(Protocol):
    def prepare_snapshot(self) -> None:
        """Run INIT for a snapshot and return once the runtime waits for its restore;
        raise an exception carrying `error_type` (e.g. Runtime.BeforeSnapshotError)."""


def prepare(env: object) -> None:
    """Park `env` after its snapshot; SnapshotFailed with Lambda's error type otherwise."""
    if not isinstance(env, Snapshottable):
        raise SnapshotFailed(
            "Runtime.SnapStartUnavailable",
            "this emulator's environments cannot take a snapshot (no prepare_snapshot)",
        )
    try:
        env.prepare_snapshot()
    except SnapshotFailed:
        raise
    except Exception as exc:
        error_type = getattr(exc, "error_type", None) or type(exc).__name__
        message = getattr(exc, "message", None) or str(exc) or str(error_type)
        raise SnapshotFailed(str(error_type), str(message)) from exc
