"""`preheat demo`: a sample model, an embedded S3, and every strategy cold-started side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from preheat.tools.cli._common import Output, need

HELP = "generate a sample model, push it to an embedded S3 and cold-start every strategy"

DEFAULT_WORKDIR = Path(".preheat") / "demo"
SAMPLE_KINDS = ("dense", "mobilenetv2", "resnet50")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="mobilenetv2",
        choices=SAMPLE_KINDS,
        help="the sample model to generate, random weights (default: mobilenetv2, 30 MB)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"where the sample model and the results go (default: {DEFAULT_WORKDIR})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    parser.add_argument(
        "--cold-starts", type=int, default=2, metavar="N", help="per strategy (default 2)"
    )
    parser.add_argument(
        "--warm-requests",
        type=int,
        default=5,
        metavar="K",
        help="requests after each cold start (default 5)",
    )
    parser.add_argument(
        "--network",
        choices=("lambda", "loopback"),
        default="lambda",
        help="lambda (default): S3 behind a 600 Mbit/s cap, which needs root; without root "
        "the demo says so and runs unshaped; loopback: unshaped",
    )
    parser.epilog = (
        "Generates the sample model (kept in WORKDIR for the next run), starts an embedded S3 "
        "(moto), pushes the model, then runs `preheat bench` with every strategy this preheat "
        "offers: each one cold-started in fresh local Lambda environments running AWS's "
        "runtime client. Prints the table and where bench.json and bench.png are. Nothing is "
        "left running afterwards, also on Ctrl-C."
    )


def run(args: argparse.Namespace, out: Output) -> int:
    import os

    from preheat.tools.cli.bench import BENCH_NEEDS, report

    need("demo", *BENCH_NEEDS)  # the demo is a benchmark run on a sample model
    from preheat.tools.bench import runner

    # TensorFlow's C++ start-up chatter would bury the demo's own lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    opts = runner.Options(
        sample=args.model,
        network=args.network,
        cold_starts=args.cold_starts,
        warm_requests=args.warm_requests,
        out=args.workdir,
        seed=args.seed,
    )
    out.progress(
        f"preheat demo: {args.model} with random weights, {args.cold_starts} cold starts per "
        "strategy; this takes a few minutes",
        force=True,
    )
    outcome = runner.run(opts, lambda msg: out.progress(msg, force=True))
    report(outcome, out)
    return 0
