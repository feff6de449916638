"""What every verb shares: one-line errors, progress on stderr, JSON on stdout."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import orjson

from preheat.exceptions import MissingExtra

# Every optional package a verb may import, by its import name: the name a user knows it
# by and the extra of preheat that installs it (see pyproject.toml).
OPTIONAL: Mapping[str, tuple[str, str]] = {
    "tensorflow": ("tensorflow", "tensorflow"),
    "ai_edge_litert": ("ai_edge_litert", "litert"),
    "awslambdaric": ("awslambdaric", "local"),
    "moto": ("moto[server]", "local"),
    # moto's server mode runs on flask, which plain `moto` does not install.
    "flask": ("moto[server]", "local"),
    "matplotlib": ("matplotlib", "local"),
    "packaging": ("packaging", "local"),
}


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


def installed(module: str) -> bool:
    """Whether `module` can be imported here, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def need(verb: str, *modules: str, found: Callable[[str], bool] = installed) -> None:
    """Stop `preheat VERB` before any work when an optional package it uses is missing.

    Each verb calls this first thing in its `run`, so that a missing extra is one line
    naming it, not an ImportError halfway through.
    """
    packages: list[str] = []
    extras: list[str] = []
    for module in modules:
        if found(module):
            continue
        package, extra = OPTIONAL[module]
        if package not in packages:
            packages.append(package)
        if extra not in extras:
            extras.append(extra)
    if packages:
        raise MissingExtra(verb, packages, extras)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def positive(kind: type[int] | type[float]) -> Any:
    """An argparse type: a number of `kind` above 0."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} must be above 0")
        return value

    return parse


def key_value(text: str) -> tuple[str, str]:
    """An argparse type: KEY=VALUE, the key not empty."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value
