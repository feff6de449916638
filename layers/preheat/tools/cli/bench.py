"""`preheat bench`: cold-start every strategy in fresh local Lambda environments and compare."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from preheat.tools.bench.initlimit import DEFAULT as DEFAULT_RULE
from preheat.tools.bench.initlimit import RULES
from preheat.tools.cli._common import Output, need

if TYPE_CHECKING:
    from preheat.tools.bench.runner import Options, Outcome

HELP = "measure cold starts of each strategy against a baseline in a local Lambda"

SAMPLE_KINDS = ("mobilenetv2", "resnet50", "dense")
# TensorFlow computes the reference outputs and fills the bench's environments; moto is
# the embedded S3; awslambdaric runs every environment; matplotlib draws the chart.
BENCH_NEEDS = ("tensorflow", "awslambdaric", "moto", "flask", "matplotlib", "packaging")


def register(parser: argparse.ArgumentParser) -> None:
    from preheat.tools.bench.strategies import get, names

    src = parser.add_mutually_exclusive_group()
    src.add_argument("--model", type=Path, metavar="DIR", help="a SavedModel directory")
    src.add_argument(
        "--sample",
        choices=SAMPLE_KINDS,
        help="generate a sample model with random weights (default: mobilenetv2)",
    )
    opt_in = [n for n in names() if get(n).snapstart]
    parser.add_argument(
        "--strategies",
        metavar="A,B",
        help=f"comma-separated, or all; default every one but {' and '.join(opt_in)}: "
        f"{', '.join(n for n in names() if n not in opt_in)}",
    )
    parser.add_argument(
        "--snapstart",
        action="store_true",
        help=f"also run {', '.join(opt_in)} (Python 3.12; TensorFlow's is installed with pip "
        "on first use), reported in a section of their own",
    )
    parser.add_argument(
        "--network",
        choices=("loopback", "lambda"),
        default="loopback",
        help="lambda: S3 behind a bandwidth cap in a network namespace (needs root); "
        "loopback: unshaped (default)",
    )
    parser.add_argument(
        "--bandwidth-mbit",
        type=float,
        default=600.0,
        metavar="R",
        help="the cap of the lambda profile in Mbit/s (default 600, about a function's)",
    )
    parser.add_argument(
        "--cold-starts", type=int, default=3, metavar="N", help="per strategy (default 3)"
    )
    parser.add_argument(
        "--warm-requests",
        type=int,
        default=20,
        metavar="K",
        help="requests after each cold start, for warm p50/p99 (default 20)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=0,
        metavar="K",
        help="also cold-start K environments at the same moment per strategy (default off)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        metavar="DIR",
        help="where bench.json and bench.png go (default ./bench-results)",
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=1769,
        metavar="MB",
        help="function memory; CPU follows it as on Lambda (default 1769: one vCPU)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=4,
        metavar="N",
        help="distinct inputs the requests cycle through for the parity check (default 4)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of model and inputs")
    parser.add_argument(
        "--init-limit",
        choices=RULES,
        default=DEFAULT_RULE,
        help="lambda: INIT cut at 10 s and retried inside the first invoke, as on Lambda, "
        "with preheat's INIT budget as deployed; lifted: INIT runs to its end (up to 120 s) "
        f"and is measured whole, the budget off (default {DEFAULT_RULE}: every INIT has its "
        "breakdown and the ratios compare whole INITs)",
    )
    parser.add_argument(
        "--functions-dir",
        type=Path,
        metavar="DIR",
        help="the functions/ folder holding inference/ and baseline/ (default: preheat's own)",
    )


def options_from(args: argparse.Namespace) -> Options:
    from preheat.tools.bench.runner import Options

    sample = args.sample if args.model is None else None
    return Options(
        model=args.model,
        sample=sample or (None if args.model else "mobilenetv2"),
        strategies=args.strategies,
        network=args.network,
        bandwidth_mbit=args.bandwidth_mbit,
        cold_starts=args.cold_starts,
        warm_requests=args.warm_requests,
        burst=args.burst,
        out=args.out,
        memory_mb=args.memory_mb,
        samples=args.samples,
        seed=args.seed,
        functions_dir=args.functions_dir,
        init_limit=args.init_limit,
        snapstart=args.snapstart,
    )


def report(outcome: Outcome, out: Output) -> None:
    """Print the table (or the JSON document) and where the files are."""
    from preheat.tools.bench.summary import table

    out.done_progress()
    lines = [table(outcome.doc), "", f"results: {outcome.json_path}"]
    if outcome.chart_path is not None:
        lines.append(f"chart:   {outcome.chart_path}")
    out.result(outcome.doc, "\n".join(lines))


def run(args: argparse.Namespace, out: Output) -> int:
    import os

    need("bench", *BENCH_NEEDS)

    from preheat.tools.bench import runner

    # TensorFlow's C++ log lines (converter, loader) would bury the progress lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    outcome = runner.run(options_from(args), lambda msg: out.progress(msg, force=True))
    report(outcome, out)
    return 0
