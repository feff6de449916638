"""Fetch benchmark: preheat's chunked fetch against boto3 on one embedded S3, same bytes.

(a) boto3 `download_file` of each file, (b) one `get_object()['Body'].read()` of all the
bytes as one object (the floor), (c) `preheat.cache.resolve` into an empty disk tier.
Methods take turns within each repetition; medians over repetitions; ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from preheat.cache import resolve
from preheat.cache.client import make_client
from preheat.settings import Settings
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push

SEED = 0
BUCKET = "preheat-bench"


def build_model(workdir: Path) -> Path:
    """ResNet50 with random weights (fixed seed) exported as a SavedModel, built once."""
    out = workdir / "resnet50"
    if (out / "saved_model.pb").is_file() and (out / ".complete").is_file():
        return out
    print(f"building ResNet50 (weights=None, seed {SEED}) into {out} …", file=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.applications.ResNet50(weights=None)
    if out.exists():
        shutil.rmtree(out)
    model.export(str(out), verbose=False)
    (out / ".complete").write_text("")
    return out


def model_files(model: Path) -> list[Path]:
    return sorted(p for p in model.rglob("*") if p.is_file() and not p.name.startswith("."))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", type=Path, default=Path(".preheat/bench"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--concurrency",
        default="16",
        help="preheat fetch threads; a comma list (e.g. 4,8,16,32) measures each",
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON results (default WORKDIR/fetch.json)"
    )
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    concurrencies = [int(x) for x in str(args.concurrency).split(",")]
    model = build_model(args.workdir)
    files = model_files(model)
    total = sum(p.stat().st_size for p in files)
    scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=args.workdir))
    results: dict[str, Any] = {
        "bytes": total,
        "files": len(files),
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
    }
    try:
        with S3Server() as server:
            # preheat's own client is configured the way a function's is: from the environment.
            os.environ.update(server.env())
            client = server.client()
            client.create_bucket(Bucket=BUCKET)
            print(f"uploading {total / 1e6:.1f} MB in {len(files)} files …", file=sys.stderr)
            pushed = push(model, f"s3://{BUCKET}/p", name="resnet50", version="1", s3_client=client)
            for p in files:
                client.upload_file(str(p), BUCKET, f"raw/{p.relative_to(model).as_posix()}")
            client.put_object(
                Bucket=BUCKET, Key="stream/all", Body=b"".join(p.read_bytes() for p in files)
            )

            def run_a() -> float:
                dest = scratch / "a"
                shutil.rmtree(dest, ignore_errors=True)
                t = time.perf_counter()
                for p in files:
                    rel = p.relative_to(model).as_posix()
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(BUCKET, f"raw/{rel}", str(dest / rel))
                return time.perf_counter() - t

            def run_b() -> float:
                t = time.perf_counter()
                data = client.get_object(Bucket=BUCKET, Key="stream/all")["Body"].read()
                elapsed = time.perf_counter() - t
                assert len(data) == total
                return elapsed

            def run_c(concurrency: int) -> Callable[[], float]:
                settings = Settings(
                    cache_dir=scratch / "c", local_paths=(), fetch_concurrency=concurrency
                )
                fetch_client = make_client(settings)

                def once() -> float:
                    shutil.rmtree(scratch / "c", ignore_errors=True)
                    t = time.perf_counter()
                    res = resolve(pushed.uri, settings, s3_client=fetch_client)
                    elapsed = time.perf_counter() - t
                    assert res.tier == "s3" and res.bytes_by_tier["s3"] == total
                    return elapsed

                return once

            # Warm the server and the connection pools once, untimed.
            runners: dict[str, Callable[[], float]] = {"a": run_a, "b": run_b}
            for k in concurrencies:
                runners[f"c{k}"] = run_c(k)
            runners["b"]()
            runners[f"c{concurrencies[0]}"]()
            # Methods take turns within each repetition (in a rotating order), so that load
            # from anything else on the machine falls on all of them alike.
            runs: dict[str, list[float]] = {name: [] for name in runners}
            names = list(runners)
            for rep in range(args.repeats):
                shift = rep % len(names)
                for name in names[shift:] + names[:shift]:
                    runs[name].append(runners[name]())
                print(f"repetition {rep + 1}/{args.repeats} done", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    a = statistics.median(runs["a"])
    b = statistics.median(runs["b"])
    rows = [("(a) boto3 download_file per file", a), ("(b) one get_object().read()", b)]
    results["a_download_file_s"] = {"median": a, "runs": runs["a"]}
    results["b_get_object_read_s"] = {"median": b, "runs": runs["b"]}
    results["c_preheat_fetch_s"] = {}
    for k in concurrencies:
        cm = statistics.median(runs[f"c{k}"])
        results["c_preheat_fetch_s"][str(k)] = {
            "median": cm,
            "runs": runs[f"c{k}"],
            "vs_b": cm / b,
            "speedup_vs_a": a / cm,
        }
        rows.append((f"(c) preheat fetch, concurrency {k}", cm))

    print(f"\n{total / 1e6:.1f} MB in {len(files)} files, {args.repeats} runs each, medians")
    print(f"{'method':42} {'seconds':>8} {'MB/s':>8} {'x (b)':>7} {'a / x':>7}")
    for label, s in rows:
        print(f"{label:42} {s:8.3f} {total / 1e6 / s:8.0f} {s / b:7.2f} {a / s:7.1f}")
    out = args.out or args.workdir / "fetch.json"
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
