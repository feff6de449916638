"""`preheat slim SRC OUT`: a smaller artifact with its parity against the source measured."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from preheat.exceptions import ConfigurationError
from preheat.tools.cli._common import Output, human_bytes, need

HELP = "slim a SavedModel into an artifact (TensorFlow exact or LiteRT) and prove its parity"

EPILOG = """\
runtimes:
  tensorflow  re-save only what serving needs (signatures, each variable once, assets);
              outputs must be bit-identical to the source
  litert      convert at fp32, fp16 or int8 (dynamic range); parity is measured with the
              LiteRT interpreter that ships (ai-edge-litert)
  auto        try LiteRT at --precision, keep TensorFlow exact when LiteRT cannot express
              the model (string inputs, lookup tables, other ops) or misses the tolerance

default tolerances (max relative error, against each output's largest magnitude):
  fp32 1e-4, fp16 1e-2, int8 1e-1; exact must be bit-identical

examples:
  preheat slim exported/ artifacts/resnet --runtime litert --precision fp16
  preheat slim exported/ artifacts/resnet --runtime tensorflow
  preheat slim exported/ artifacts/resnet --sample-inputs real.npz --json
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("src", metavar="SRC", type=Path, help="the SavedModel directory")
    parser.add_argument(
        "out", metavar="OUT", type=Path, help="the artifact directory to write (absent or empty)"
    )
    parser.add_argument(
        "--runtime",
        default="auto",
        metavar="{tensorflow,litert,auto}",
        help="runtime of the artifact (default: auto)",
    )
    parser.add_argument(
        "--precision",
        default=None,
        metavar="{exact,fp32,fp16,int8}",
        help="exact for tensorflow; fp32, fp16 or int8 for litert (default: exact for "
        "tensorflow, fp16 for litert and auto)",
    )
    parser.add_argument(
        "--max-abs-error", metavar="X", help="largest absolute difference allowed (litert)"
    )
    parser.add_argument(
        "--max-rel-error",
        metavar="X",
        help="largest difference allowed, relative to each output's largest magnitude (litert)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--samples", metavar="N", default="16", help="seeded random sample rows (default: 16)"
    )
    group.add_argument(
        "--sample-inputs",
        metavar="FILE",
        type=Path,
        help=".npz with one array per input, named like the serving signature's inputs",
    )
    parser.add_argument("--seed", metavar="N", default="0", help="seed of the random samples")
    parser.add_argument("--name", help="artifact name (default: SRC's directory name)")
    parser.add_argument(
        "--version", help="artifact version (default: the first 12 hex of the source fingerprint)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace OUT if it exists and is not empty"
    )


def _number(name: str, raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(name, raw, "use a number >= 0, e.g. 1e-3") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(name, raw, "use a finite number >= 0, e.g. 1e-3")
    return value


def _count(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(name, raw, f"use a whole number >= {minimum}") from None
    if value < minimum:
        raise ConfigurationError(name, raw, f"use a whole number >= {minimum}")
    return value


def run(args: argparse.Namespace, out: Output) -> int:
    import os

    from preheat.tools.slim.slimmer import DEFAULT_PRECISION

    # TensorFlow reads the SavedModel; LiteRT's interpreter checks a LiteRT artifact's parity.
    precision = args.precision or DEFAULT_PRECISION.get(args.runtime, "exact")
    litert = args.runtime in ("litert", "auto") and precision != "exact"
    need("slim", "tensorflow", *(["ai_edge_litert"] if litert else []))
    # TensorFlow's C++ start-up chatter would bury the progress lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from preheat.tools.slim import slim

    result = slim(
        args.src,
        args.out,
        runtime=args.runtime,
        precision=args.precision,
        max_abs_error=_number("--max-abs-error", args.max_abs_error),
        max_rel_error=_number("--max-rel-error", args.max_rel_error),
        samples=_count("--samples", args.samples, 1),
        sample_inputs=args.sample_inputs,
        name=args.name,
        version=args.version,
        force=args.force,
        seed=_count("--seed", args.seed, 0),
        progress=lambda message: out.progress(message, force=True),
    )
    out.done_progress()
    r = result.report
    m = result.manifest
    top1 = r.get("top1_agreement")
    human = "\n".join(
        [
            f"wrote {result.out} ({m.name}/{m.version}): {m.runtime} {m.precision}, "
            f"{human_bytes(r['artifact_bytes'])} = {r['ratio']:.1%} of the source's "
            f"{human_bytes(r['source_bytes'])}",
            f"parity on {r['samples']} samples ({r['sample_inputs']}): "
            + (
                "bit-identical"
                if r["bit_identical"]
                else f"max abs error {r['max_abs_error']:.3g}, max rel error {r['max_rel_error']:.3g}"
            )
            + (f", top-1 agreement {top1:.1%}" if isinstance(top1, float) else ""),
            f"runtime: {r['reason']}",
        ]
    )
    out.result(
        {
            "out": str(result.out),
            "name": m.name,
            "version": m.version,
            "runtime": m.runtime,
            "precision": m.precision,
            "parity": r,
        },
        human,
    )
    return 0
