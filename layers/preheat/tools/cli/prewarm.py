"""`preheat prewarm`: warm N environments of a function now and show which ones answered."""

from __future__ import annotations

import argparse
from typing import Any

from preheat.tools.cli._common import Output
from preheat.warm import engine

HELP = "warm N execution environments of a function now and check that N distinct ones answered"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is below 1")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is below 0")
    return value


def _positive(text: str) -> float:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 leaves no time; use a number of seconds above 0")
    return value


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--function", required=True, help="function name or ARN to warm")
    parser.add_argument("--qualifier", help="alias or version to warm, e.g. live")
    parser.add_argument(
        "--concurrency",
        required=True,
        type=_positive_int,
        help="how many distinct environments must answer",
    )
    parser.add_argument(
        "--hold-ms",
        type=_non_negative,
        default=None,
        help="how long each first-round ping keeps its environment busy "
        f"(default {engine.DEFAULT_HOLD_MS:g}); later rounds hold longer",
    )
    parser.add_argument(
        "--max-rounds",
        type=_positive_int,
        default=None,
        help=f"give up after this many rounds (default {engine.DEFAULT_MAX_ROUNDS})",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=None,
        help=f"seconds the whole run may take (default {engine.DEFAULT_BUDGET_S:g})",
    )
    parser.epilog = (
        "The function's handler must be wrapped in preheat.warm.warm_handler. Exits 1 when fewer "
        "than N environments answered, with the reason. Lambda is reached with boto3's usual "
        "credentials; AWS_ENDPOINT_URL_LAMBDA points it at any Lambda-compatible endpoint."
    )


def _table(data: dict[str, Any]) -> str:
    rows = [("round", "hold ms", "sent", "answered", "new", "cold", "errors")]
    for r in data["round_details"]:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "-"
        rows.append(
            (
                str(r["round"]),
                f"{r['hold_ms']:.0f}",
                str(r["sent"]),
                str(r["answered"]),
                str(r["new"]),
                str(r["cold_starts"]),
                errors,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    label = f"{data['function']}:{data['qualifier']}" if data["qualifier"] else data["function"]
    lines.append(
        f"{label}: {data['warm']} of {data['asked']} environments warm, "
        f"{data['cold_starts']} cold starts caused, {data['rounds']} rounds, "
        f"{data['duration_s']:.2f} s"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace, out: Output) -> int:
    target = engine.Target(args.function, args.qualifier, args.concurrency)
    budget = args.timeout if args.timeout is not None else engine.DEFAULT_BUDGET_S
    options: dict[str, Any] = {"budget_s": budget}
    if args.hold_ms is not None:
        options["hold_ms"] = args.hold_ms
        options["max_hold_ms"] = max(args.hold_ms, engine.DEFAULT_MAX_HOLD_MS)
    if args.max_rounds is not None:
        options["max_rounds"] = args.max_rounds

    def on_round(t: engine.Target, r: engine.RoundReport, warm: int) -> None:
        errors = sum(r.errors.values())
        tail = f", {errors} errors" if errors else ""
        out.progress(
            f"{t.label}: round {r.round}: {r.sent} pings held {r.hold_ms:.0f} ms, "
            f"{r.new} new, {warm}/{t.concurrency} warm{tail}",
            force=True,
        )

    out.progress(f"warming {target.label}: {target.concurrency} environments …", force=True)
    # Reads end with the budget, so no ping outlives the run.
    client = engine.lambda_client(target.concurrency, read_timeout_s=budget)
    report = engine.warm_target(
        client, target.function, target.qualifier, target.concurrency, on_round=on_round, **options
    )
    out.done_progress()
    data = report.to_dict()
    out.result(data, _table(data))
    if not report.ok:
        out.error(f"{report.shortfall} of {report.asked} environments short: {report.reason}")
        return 1
    return 0
