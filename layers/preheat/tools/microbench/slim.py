"""Benchmark the slimmer and the layer builder on Keras ResNet50 (random weights).

Reports bytes (exported vs `exact` vs LiteRT fp32/fp16/int8), parity on the sample inputs,
what dominates a Keras 3 export, and the LiteRT runtime layer's size, against the targets:
exact <= 52% of the export and bit-identical; LiteRT fp16 <= 26%, max relative error <= 1e-2
and top-1 agreement 100%; runtime layer <= 100 MB unzipped. Not a test: it measures.

    .venv/bin/python scripts/bench_slim.py [--workdir DIR] [--samples 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGETS = {"exact_ratio": 0.52, "fp16_ratio": 0.26, "fp16_rel": 1e-2, "layer_mb": 100.0}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def export_breakdown(path: Path) -> dict[str, Any]:
    """Bytes of a SavedModel by part, and its checkpoint's tensors by top-level list."""
    import numpy as np
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    by_list: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for name, shape in shapes.items():
        if "OBJECT_GRAPH" in name:
            continue
        top = name.split("/")[0]
        by_list[top] += int(np.prod(shape, dtype=np.int64)) * dtypes[name].size
        counts[top] += 1
    data = sum(f.stat().st_size for f in (path / "variables").glob("variables.data-*"))
    return {
        "total_bytes": dir_bytes(path),
        "saved_model_pb_bytes": (path / "saved_model.pb").stat().st_size,
        "variables_data_bytes": data,
        "checkpoint_tensor_bytes_by_list": dict(by_list),
        "checkpoint_tensors_by_list": dict(counts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(".preheat/bench-slim"))
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-layer", action="store_true", help="do not build the layer")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    from preheat.tools.sample_models import make_sample_model
    from preheat.tools.slim import slim

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    say("exporting Keras ResNet50 with random weights (reused when present)")
    source = make_sample_model("resnet50", work / "resnet50-export", seed=args.seed)
    results: dict[str, Any] = {"model": "keras ResNet50, random weights", "samples": args.samples}
    results["export"] = export_breakdown(source)
    exported = results["export"]["total_bytes"]

    runs: dict[str, dict[str, Any]] = {}
    for label, runtime, precision in (
        ("exact", "tensorflow", "exact"),
        ("litert-fp32", "litert", "fp32"),
        ("litert-fp16", "litert", "fp16"),
        ("litert-int8", "litert", "int8"),
    ):
        say(f"slimming: {label}")
        started = time.perf_counter()
        # An unbounded tolerance so every precision reports its figures; they are judged below.
        result = slim(
            source,
            work / label,
            runtime=runtime,
            precision=precision,
            max_rel_error=None if runtime == "tensorflow" else float("inf"),
            samples=args.samples,
            seed=args.seed,
            force=True,
            progress=say,
        )
        r = result.report
        runs[label] = {
            "bytes": r["artifact_bytes"],
            "ratio_of_export": r["artifact_bytes"] / exported,
            "bit_identical": r["bit_identical"],
            "max_abs_error": r["max_abs_error"],
            "max_rel_error": r["max_rel_error"],
            "top1_agreement": r["top1_agreement"],
            "samples": r["samples"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        if label == "exact":
            runs[label]["breakdown"] = export_breakdown(result.out)
    results["artifacts"] = runs

    if not args.skip_layer:
        from preheat.tools.layer import build_runtime_layer

        say("building the LiteRT runtime layer")
        layer = build_runtime_layer("litert", work / "layers", progress=say)
        results["runtime_layer"] = layer.to_dict()

    checks = {
        "exact <= 52% of export, bit-identical": runs["exact"]["ratio_of_export"]
        <= TARGETS["exact_ratio"]
        and runs["exact"]["bit_identical"],
        "fp16 <= 26% of export": runs["litert-fp16"]["ratio_of_export"] <= TARGETS["fp16_ratio"],
        "fp16 max rel error <= 1e-2": runs["litert-fp16"]["max_rel_error"] <= TARGETS["fp16_rel"],
        "fp16 top-1 agreement 100%": runs["litert-fp16"]["top1_agreement"] == 1.0,
    }
    if "runtime_layer" in results:
        mb = results["runtime_layer"]["unzipped_bytes"] / 1e6
        checks["runtime layer <= 100 MB unzipped"] = mb <= TARGETS["layer_mb"]
    results["targets_met"] = checks
    (work / "bench_slim.json").write_text(json.dumps(results, indent=2))

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    ex = results["export"]
    print(f"Keras 3 export: {exported / 1e6:.1f} MB (saved_model.pb "
          f"{ex['saved_model_pb_bytes'] / 1e6:.1f} MB, variables "
          f"{ex['variables_data_bytes'] / 1e6:.1f} MB)")  # fmt: skip
    for top, size in sorted(ex["checkpoint_tensor_bytes_by_list"].items(), key=lambda kv: -kv[1]):
        print(f"  checkpoint list {top!r}: {size / 1e6:.1f} MB "
              f"in {ex['checkpoint_tensors_by_list'][top]} tensors")  # fmt: skip
    print(f"{'artifact':<13} {'MB':>7} {'of export':>9} {'max abs':>10} {'max rel':>10} "
          f"{'top-1':>7} {'bit-identical':>13}")  # fmt: skip
    for label, run in runs.items():
        top1 = run["top1_agreement"]
        print(f"{label:<13} {run['bytes'] / 1e6:7.1f} {run['ratio_of_export']:9.1%} "
              f"{run['max_abs_error']:10.3g} {run['max_rel_error']:10.3g} "
              f"{'-' if top1 is None else f'{top1:.1%}':>7} {run['bit_identical']!s:>13}")  # fmt: skip
    if "runtime_layer" in results:
        rl = results["runtime_layer"]
        print(f"runtime layer {rl['zip']}: {rl['zipped_bytes'] / 1e6:.1f} MB zipped, "
              f"{rl['unzipped_bytes'] / 1e6:.1f} MB unzipped")  # fmt: skip
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'MISSED'}] {name}")
    print(f"results: {work / 'bench_slim.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
