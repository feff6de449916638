"""`preheat demo`: an embedded S3, a generated model, and one cold start of the function."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from preheat.cli._common import Output, human_bytes

HELP = "cold-start the inference function locally on a generated model and show the INIT phases"

DEFAULT_WORKDIR = Path(".preheat") / "demo"
BUCKET = "preheat-demo"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="mobilenetv2",
        choices=("dense", "mobilenetv2", "resnet50"),
        help="the sample model to generate, random weights (default: mobilenetv2, 30 MB)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"where the sample model and the disk tier live (default: {DEFAULT_WORKDIR})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.epilog = (
        "Starts an embedded S3 (moto) on loopback, generates the sample model (kept in WORKDIR "
        "for the next run), pushes it, then imports functions/inference/app.py in a fresh "
        "process with an empty disk tier, as Lambda's INIT would, and sends one prediction. "
        "Nothing is left running afterwards, also on Ctrl-C."
    )


def _example_event(signature: Any, seed: int) -> dict[str, Any]:
    import numpy as np

    from preheat.runtimes.base import example_inputs

    rng = np.random.default_rng(seed)
    inputs = {}
    for name, zeros in example_inputs(signature).items():
        if zeros.dtype.kind == "f":
            inputs[name] = rng.random(zeros.shape, dtype="float32").tolist()
        else:
            inputs[name] = zeros.tolist()
    return {"inputs": inputs}


def _ms(seconds: Any) -> str:
    return f"{seconds * 1000:8.0f} ms" if isinstance(seconds, int | float) else "       -"


def _human(report: dict[str, Any], prediction: dict[str, Any], wall_s: float) -> str:
    rows = [
        ("import preheat (starts the fetch)", report.get("preheat_import_s")),
        ("import tensorflow", report.get("runtime_import_s")),
        ("fetch (in the background)", report.get("fetch_s")),
        ("  waited for the fetch", report.get("fetch_wait_s")),
        ("tf.saved_model.load", report.get("load_s")),
        ("warm-up inference", report.get("warmup_s")),
        ("INIT, handler module", report.get("init_s")),
    ]
    by_tier = report.get("bytes_by_tier") or {}
    lines = [
        f"model {report.get('version_uri')} from the {report.get('tier')} tier "
        f"({', '.join(f'{t} {human_bytes(n)}' for t, n in by_tier.items() if n) or '0 B'})",
        "",
        *(f"  {label:<36}{_ms(value)}" for label, value in rows),
        f"  {'fresh process, start to first answer':<36}{_ms(wall_s)}",
        "",
    ]
    for name, values in (prediction.get("outputs") or {}).items():
        import numpy as np

        arr = np.asarray(values)
        if arr.ndim == 2 and arr.shape[1] > 1:
            top = int(arr[0].argmax())
            lines.append(
                f"prediction {name}: class {top} (score {arr[0, top]:.4f}), shape {arr.shape}"
            )
        else:
            lines.append(f"prediction {name}: {arr.ravel()[:6].tolist()}, shape {arr.shape}")
    return "\n".join(lines)


def run(args: argparse.Namespace, out: Output) -> int:
    import shutil

    from preheat.handler import coldstart
    from preheat.local.s3 import S3Server
    from preheat.push import push
    from preheat.samples import make_sample_model

    # TensorFlow's C++ start-up chatter would bury the demo's own lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir: Path = args.workdir.resolve()
    function = coldstart.function_dir()
    out.progress(f"generating the {args.model} sample model (random weights) …", force=True)
    model_dir = make_sample_model(args.model, workdir / "models" / args.model, seed=args.seed)

    with S3Server() as server:
        out.progress(f"embedded S3 at {server.endpoint_url}; pushing …", force=True)
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        pushed = push(
            model_dir,
            f"s3://{BUCKET}/demo",
            name=args.model,
            version="1",
            s3_client=client,
            progress=lambda done, total: out.progress(
                f"pushing {human_bytes(done)} / {human_bytes(total)}", force=done == total
            ),
        )
        cache_dir = workdir / "cache"
        # An empty disk tier, so that this cold start fetches from S3 as a new environment.
        shutil.rmtree(cache_dir, ignore_errors=True)
        env = {
            **os.environ,
            **server.env(),
            "PREHEAT_MODEL_URI": pushed.uri,
            "PREHEAT_CACHE_DIR": str(cache_dir),
            "PREHEAT_LOCAL_PATHS": "",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        out.progress("cold-starting the inference function in a fresh process …", force=True)
        event = _example_event(pushed.manifest.signature, args.seed)
        result = coldstart.run([event], env, directory=function)
    out.done_progress()

    if result.init_error is not None:
        from preheat.exceptions import PreheatError

        raise PreheatError(
            f"INIT failed: {result.init_error['type']}: {result.init_error['message']}"
        )
    report = dict(result.init_report)
    prediction = result.results[0] if result.results else {}
    out.result(
        {
            "uri": pushed.uri,
            "model_bytes": pushed.manifest.total_bytes,
            "init": report,
            "wall_s": round(result.wall_s, 4),
            "prediction": prediction,
        },
        _human(report, prediction, result.wall_s),
    )
    return 0
