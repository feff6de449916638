"""`preheat push`: upload a SavedModel or an artifact to S3 as content-addressed chunks."""

from __future__ import annotations

import argparse
from pathlib import Path

from preheat.constants import MANIFEST_NAME
from preheat.tools.cli._common import Output, human_bytes, need

HELP = "upload a SavedModel or artifact to S3 as chunks (unchanged chunks are skipped)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="a SavedModel directory or a preheat artifact")
    parser.add_argument(
        "dest", metavar="s3://BUCKET/PREFIX", help="where models and chunks live in S3"
    )
    parser.add_argument("--name", required=True, help="the model's name, e.g. resnet50")
    parser.add_argument("--version", required=True, help="the version to create, e.g. 2024-06-01")
    parser.add_argument(
        "--alias", help="also point NAME@ALIAS (e.g. prod) at this version once it is uploaded"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="parallel chunk uploads (default 8)",
    )
    parser.add_argument(
        "--no-slim",
        dest="slim",
        action="store_false",
        help="push a SavedModel as it is; by default it is first re-saved exact (only the "
        "signatures' functions, each weight once, outputs proven bit-identical)",
    )
    parser.epilog = (
        "Prints the model URI to put in PREHEAT_MODEL_URI. S3 is reached with boto3's usual "
        "credentials; AWS_ENDPOINT_URL_S3 points it at any S3-compatible server."
    )


def run(args: argparse.Namespace, out: Output) -> int:
    from preheat.exceptions import ConfigurationError
    from preheat.tools import push as p
    from preheat.uri import check_name

    src = Path(args.src)
    # Everything cheap is checked before reading the model or touching S3.
    p.parse_dest(args.dest)
    check_name("model name", args.name)
    check_name("model version", args.version)
    if args.alias:
        check_name("model alias", args.alias)
    if not src.is_dir():
        raise ConfigurationError("SRC", args.src, "no such directory")
    if (src / "saved_model.pb").is_file() and not (src / MANIFEST_NAME).is_file():
        need("push", "tensorflow")  # a SavedModel's signatures are read (and re-saved) by it
    kwargs = {} if args.concurrency is None else {"concurrency": args.concurrency}

    def progress(done: int, total: int) -> None:
        if total:
            out.progress(
                f"uploading {human_bytes(done)} / {human_bytes(total)}", force=done == total
            )

    result = p.push(
        src,
        args.dest,
        name=args.name,
        version=args.version,
        progress=progress,
        on_stage=lambda text: out.progress(f"{text} …", force=True),
        slim=args.slim,
        **kwargs,
    )
    out.done_progress()
    alias_uri = None
    if args.alias:
        alias_uri = p.set_alias(args.dest, args.name, args.alias, args.version)
    data = {
        "uri": result.uri,
        "alias_uri": alias_uri,
        "name": result.manifest.name,
        "version": result.manifest.version,
        "total_bytes": result.manifest.total_bytes,
        "uploaded_bytes": result.uploaded_bytes,
        "skipped_bytes": result.skipped_bytes,
        "chunks_uploaded": result.chunks_uploaded,
        "chunks_skipped": result.chunks_skipped,
        "slimmed": result.slimmed,
    }
    lines = [
        result.uri,
        *(["re-saved exact: outputs bit-identical to the export"] if result.slimmed else []),
        f"uploaded {human_bytes(result.uploaded_bytes)} in {result.chunks_uploaded} chunks, "
        f"skipped {human_bytes(result.skipped_bytes)} already in S3 "
        f"({result.chunks_skipped} chunks)",
    ]
    if alias_uri:
        lines.append(f"alias {alias_uri} -> {args.version}")
    out.result(data, "\n".join(lines))
    return 0
