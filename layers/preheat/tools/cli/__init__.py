"""The `preheat` command: one verb per module under preheat.tools.cli, each light to import.

A verb module defines `HELP` (one line), `register(parser)` and `run(args, out) -> int`.
Heavy imports (TensorFlow, boto3 services, matplotlib) happen inside `run`, so that
`preheat --help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

from preheat.constants import ENV_DEBUG
from preheat.exceptions import MissingExtra, PreheatError
from preheat.tools.cli._common import Output

# The verbs in the order `--help` lists them.
VERBS: tuple[str, ...] = (
    "slim",
    "push",
    "layer",
    "emulate",
    "bench",
    "profile",
    "demo",
    "deploy",
    "destroy",
    "prewarm",
)


class _Verb(Protocol):
    HELP: str

    def register(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, out: Output) -> int: ...


def _load(verb: str) -> _Verb | None:
    try:
        return cast(_Verb, importlib.import_module(f"preheat.tools.cli.{verb}"))
    except ModuleNotFoundError as exc:
        if exc.name == f"preheat.tools.cli.{verb}":
            return None  # a verb not built yet simply is not offered
        raise


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at --help, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, _Verb]]:
    parser = _Parser(
        prog="preheat",
        description="Cut the cold start of TensorFlow inference on AWS Lambda.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs: dict[str, _Verb] = {}
    for name in VERBS:
        mod = _load(name)
        if mod is None:
            continue
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
        mod.register(p)
        verbs[name] = mod
    return parser, verbs


def main(argv: Sequence[str] | None = None) -> int:
    parser, verbs = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 2
    out = Output(json_mode=args.json, verb=args.verb)
    try:
        return verbs[args.verb].run(args, out)
    except MissingExtra as exc:
        # Its message already names the verb: `preheat emulate needs awslambdaric: pip …`.
        print(exc, file=out.stderr, flush=True)
        return 2
    except PreheatError as exc:
        out.error(str(exc))
        return 2
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except Exception as exc:  # a bug of ours: one line for the user, the trace on request
        if os.environ.get(ENV_DEBUG):
            raise
        out.error(f"unexpected {type(exc).__name__}: {exc} (set PREHEAT_DEBUG=1 for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
