"""`preheat destroy`: delete a deployed stack, keeping the model bucket unless asked."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from preheat.tools.cli._common import Output

HELP = "delete a deployed stack (the model bucket stays unless --delete-bucket)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="the stack `preheat deploy` created")
    parser.add_argument("--region", help="AWS region (default: boto3's usual configuration)")
    parser.add_argument(
        "--delete-bucket",
        action="store_true",
        help="also empty and delete the model bucket (only one the stack created)",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.epilog = (
        "The bucket is a Retain resource: deleting the stack leaves it and its models. "
        "Without --yes, destroy asks on a terminal and refuses when there is none."
    )


def confirm(question: str, stdin: TextIO | None = None) -> bool:
    """Ask on a terminal; with no terminal the answer is no."""
    stream = stdin if stdin is not None else sys.stdin
    if not stream.isatty():
        return False
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return stream.readline().strip().lower() in {"y", "yes"}


def run(args: argparse.Namespace, out: Output) -> int:
    from preheat.exceptions import ConfigurationError
    from preheat.tools.deploy import Clients, destroy
    from preheat.tools.deploy.validate import region, stack_name

    stack_name(args.stack)
    if args.region:
        region(args.region)
    what = f"stack {args.stack}" + (" and its model bucket" if args.delete_bucket else "")
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigurationError(
                "--yes", False, f"destroying {what} needs confirmation: pass --yes"
            )
        if not confirm(f"delete {what}?"):
            out.info("nothing deleted")
            return 1
    result = destroy(
        args.stack,
        Clients(args.region),
        delete_bucket=args.delete_bucket,
        say=lambda m: out.progress(m, force=True),
    )
    out.done_progress()
    kept = (
        f"; bucket {result.bucket} deleted ({result.objects_deleted} objects)"
        if result.bucket_deleted
        else f"; bucket {result.bucket} kept"
    )
    out.result(result.to_dict(), f"deleted stack {args.stack}{kept}")
    return 0
