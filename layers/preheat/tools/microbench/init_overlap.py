"""INIT of the inference function with the model fetch overlapping `import tensorflow`,
against the same steps one after the other (PREHEAT_PREFETCH=0).

Each cold start is a fresh process with an empty disk tier, fetching a ~200 MB SavedModel
(Keras ResNet50, random weights) from an embedded S3 (moto, in a process of its own). With
`--network lambda` (root) S3 sits behind a bandwidth cap like a Lambda function's, so the
fetch costs network time as it does on AWS; `loopback` leaves it uncapped. Runs alternate
between the two modes so that any drift in machine load hits both alike; medians and their
ratio are reported.

    .venv/bin/python scripts/bench_init_overlap.py --reps 5 --network lambda
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from preheat import constants as c
from preheat.tools import coldstart
from preheat.tools.bench.network import NetworkSetupError, ShapedNetwork
from preheat.tools.local.s3 import S3Process
from preheat.tools.push import push
from preheat.tools.sample_models import KINDS, make_sample_model

MODES = {"overlap": "1", "serial": "0"}
PHASES = ("preheat_import_s", "runtime_import_s", "fetch_s", "fetch_wait_s", "load_s", "warmup_s")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="cold starts per mode (default 5)")
    p.add_argument("--model", default="resnet50", choices=tuple(KINDS), help="sample model")
    p.add_argument("--workdir", type=Path, default=Path(".preheat/bench"), help="model + tiers")
    p.add_argument(
        "--network",
        choices=("loopback", "lambda"),
        default="lambda",
        help="lambda: S3 behind a bandwidth cap in a network namespace (root); default lambda",
    )
    p.add_argument("--mbit", type=float, default=600.0, help="the cap for --network lambda")
    p.add_argument(
        "--out", type=Path, default=Path("bench-results/init_overlap.json"), help="JSON result"
    )
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    return args


def _cold_start(server: S3Process, uri: str, cache_dir: Path, prefetch: str) -> dict[str, Any]:
    shutil.rmtree(cache_dir, ignore_errors=True)
    env = {
        **os.environ,
        **server.env(),
        c.ENV_MODEL_URI: uri,
        c.ENV_CACHE_DIR: str(cache_dir),
        c.ENV_LOCAL_PATHS: "",
        c.ENV_PREFETCH: prefetch,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    result = coldstart.run([], env)
    if result.init_error is not None:
        raise SystemExit(f"INIT failed: {result.init_error['message']}")
    report = dict(result.init_report)
    report["process_s"] = round(result.init_wall_s or 0.0, 4)
    return report


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(float(r[key]) for r in runs), 4)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir = args.workdir.resolve()
    print(f"sample model {args.model} …", file=sys.stderr, flush=True)
    model_dir = make_sample_model(args.model, workdir / "models" / args.model)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    network = args.network
    with ExitStack() as stack:
        shaped = None
        if network == "lambda":
            try:
                shaped = stack.enter_context(ShapedNetwork(args.mbit))
            except NetworkSetupError as exc:
                print(f"running unshaped (loopback): {exc}", file=sys.stderr, flush=True)
                network = "loopback"
        server = stack.enter_context(S3Process(shaped))
        client = server.client()
        client.create_bucket(Bucket="bench")
        pushed = push(
            model_dir, "s3://bench/overlap", name=args.model, version="1", s3_client=client
        )
        size = pushed.manifest.total_bytes
        print(f"pushed {size / 1e6:.0f} MB to {pushed.uri}", file=sys.stderr, flush=True)
        for rep in range(args.reps):
            # Alternate which mode goes first, so that a load trend favours neither.
            order = list(MODES) if rep % 2 == 0 else list(reversed(MODES))
            for mode in order:
                report = _cold_start(server, pushed.uri, workdir / "cache-overlap", MODES[mode])
                runs[mode].append(report)
                print(
                    f"  rep {rep + 1}/{args.reps} {mode:8} INIT {report['init_s']:.2f} s "
                    f"(import tf {report['runtime_import_s']:.2f} s, fetch {report['fetch_s']:.2f} s, "
                    f"waited {report['fetch_wait_s']:.2f} s, load {report['load_s']:.2f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    shutil.rmtree(workdir / "cache-overlap", ignore_errors=True)

    medians = {
        mode: {key: _median(rs, key) for key in (*PHASES, "init_s", "process_s")}
        for mode, rs in runs.items()
    }
    ratio = round(medians["serial"]["init_s"] / medians["overlap"]["init_s"], 3)
    result = {
        "benchmark": "init_overlap",
        "model": args.model,
        "model_bytes": size,
        "reps": args.reps,
        "network": network,
        "mbit": args.mbit if network == "lambda" else None,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "medians": medians,
        "serial_over_overlap_init": ratio,
        "saved_s": round(medians["serial"]["init_s"] - medians["overlap"]["init_s"], 4),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    where = f"S3 capped at {args.mbit:g} Mbit/s" if network == "lambda" else "S3 on loopback"
    print(
        f"\nINIT of the inference function, {args.model} ({size / 1e6:.0f} MB), {where}, "
        f"medians of {args.reps}"
    )
    print(f"{'phase (s)':<20}{'overlap':>10}{'serial':>10}")
    for key in (*PHASES, "init_s", "process_s"):
        print(f"{key:<20}{medians['overlap'][key]:>10.3f}{medians['serial'][key]:>10.3f}")
    print(
        f"\nserial / overlap INIT: {ratio:.2f}x  (saves {result['saved_s']:.2f} s); JSON: {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
