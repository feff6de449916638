"""What every verb shares: one-line errors, progress on stderr, JSON on stdout."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import orjson


class Output:
    """Human output goes to stderr (progress) and stdout (results); --json prints only JSON."""

    def __init__(
        self,
        json_mode: bool = False,
        verb: str = "",
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.verb = verb
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._last_progress = 0.0
        self._tty = self.stderr.isatty()

    def info(self, message: str) -> None:
        """A line for people; in JSON mode it goes to stderr so stdout stays parseable."""
        print(message, file=self.stderr if self.json_mode else self.stdout, flush=True)

    def progress(self, message: str, *, force: bool = False) -> None:
        """A progress line on stderr, at most a few per second unless forced."""
        now = time.monotonic()
        if not force and now - self._last_progress < 0.25:
            return
        self._last_progress = now
        if self._tty:
            print(f"\r\x1b[K{message}", end="", file=self.stderr, flush=True)
        else:
            print(message, file=self.stderr, flush=True)

    def done_progress(self) -> None:
        if self._tty:
            print(file=self.stderr, flush=True)

    def result(self, data: Any, human: str | None = None) -> None:
        """The verb's result: JSON in --json mode, else the human text (if any)."""
        if self.json_mode:
            self.stdout.write(
                orjson.dumps(
                    data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=str
                ).decode()
                + "\n"
            )
            self.stdout.flush()
        elif human is not None:
            print(human, file=self.stdout, flush=True)

    def error(self, message: str) -> None:
        first = message.strip().splitlines()[0] if message.strip() else "failed"
        prefix = f"preheat {self.verb}" if self.verb else "preheat"
        print(f"{prefix}: error: {first}", file=self.stderr, flush=True)

    def warn(self, message: str) -> None:
        prefix = f"preheat {self.verb}" if self.verb else "preheat"
        print(f"{prefix}: warning: {message}", file=self.stderr, flush=True)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
