"""Fetch engines side by side: botocore (today's fallback), obstore and awscrt, same chunks.

A sample model (ResNet50, random weights) is pushed to two moto S3 servers, one on loopback
and one behind a `tc tbf` cap in a network namespace (root; otherwise it is skipped). Each
cell is a fresh process pinned to core 0 (the S3 servers to core 1) running preheat's own
fetch with that engine: `import tensorflow` with and without a fetch in threads, fetch wall
time at the cap and on loopback, CPU seconds per 100 MB, the engine's import time, what it
adds to a Lambda layer, and whether it reads endpoint, region and keys as boto3 does.

    .venv/bin/python scripts/bench_fetch_engines.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from preheat.tools.bench.network import NetworkSetupError, ShapedNetwork
from preheat.tools.local.s3 import S3Process
from preheat.tools.microbench.fetch_engines_child import ENGINES, PACKAGES
from preheat.tools.push import push
from preheat.tools.sample_models import make_sample_model

BUCKET = "engines"
FETCH_CORE, SERVER_CORE = 0, 1
# Distributions Lambda's Python runtime provides (boto3 and what it pulls in).
LAMBDA_PROVIDED = ("boto3",)
# The distribution each engine installs.
DISTS = {"botocore": "botocore", "obstore": "obstore", "awscrt": "awscrt"}
# How each reads endpoint, region and credentials, from its documentation and the tests
# in tests/functional/test_fetch_engine.py (obstore) and tests/unit/test_cache_s3env.py.
BOTO3_CONFIG = {
    "botocore": "yes: it is boto3's own",
    "obstore": "yes, through preheat.cache.s3env (obstore alone also reads non-boto3 vars)",
    "awscrt": "keys from env; endpoint, region, path style left to the caller",
}


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="runs per cell; medians (default 3)")
    p.add_argument("--engines", default=",".join(ENGINES), help="comma list of engines")
    p.add_argument("--model", default="resnet50", help="sample model (preheat.tools.sample_models)")
    p.add_argument("--workdir", type=Path, default=Path(".preheat/bench"))
    p.add_argument("--mbit", type=float, default=600.0, help="the cap of the shaped network")
    p.add_argument("--out", type=Path, default=Path("bench-results/fetch_engines.json"))
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


def _closure(names: tuple[str, ...]) -> set[str]:
    """The installed distributions `names` need, themselves included (extras left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for req in requires:
            if "extra ==" in req:
                continue
            dep = req.split(";")[0].strip()
            for stop in "<>=!~[ (":
                dep = dep.split(stop)[0]
            todo.append(dep)
    return seen


def layer_bytes(engine: str) -> tuple[int, list[str]]:
    """Installed bytes an engine adds to a layer beyond Lambda's runtime and preheat's deps."""
    provided = _closure(LAMBDA_PROVIDED)
    others = tuple(
        r.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip()
        for r in metadata.requires("preheat") or []
        if "extra ==" not in r
    )
    provided |= _closure(tuple(o for o in others if o not in DISTS.values()))
    added = sorted(_closure((DISTS[engine],)) - provided)
    total = 0
    for name in added:
        for f in metadata.files(name) or []:
            path = Path(str(f.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total, added


class Cells:
    """Runs the one-measurement child (fetch_engines_child) and keeps its answers by cell."""

    def __init__(self, workdir: Path) -> None:
        self.cache = workdir / "engines-cache"
        self.runs: dict[str, list[dict[str, Any]]] = {}

    def run(self, cell: str, mode: str, engine: str, env: dict[str, str], uri: str = "") -> None:
        shutil.rmtree(self.cache, ignore_errors=True)
        argv = [sys.executable, "-m", "preheat.tools.microbench.fetch_engines_child", mode, engine]
        if uri:
            argv += [uri, str(self.cache)]
        child_env = {
            **os.environ,
            **env,
            "FETCH_BENCH_CORE": str(FETCH_CORE),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        proc = subprocess.run(argv, env=child_env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"{cell} {engine} failed:\n{proc.stderr[-3000:]}")
        result = orjson.loads(proc.stdout.strip().splitlines()[-1])
        self.runs.setdefault(f"{cell}/{engine}", []).append(result)
        print(f"  {cell:9} {engine:9} {orjson.dumps(result).decode()}", file=sys.stderr)

    def median(self, cell: str, engine: str, key: str) -> float | None:
        runs = self.runs.get(f"{cell}/{engine}")
        return statistics.median(float(r[key]) for r in runs) if runs else None


def _rotated(items: list[str], rep: int) -> list[str]:
    shift = rep % len(items)
    return items[shift:] + items[:shift]


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise SystemExit(f"unknown engine(s) {', '.join(unknown)}; use {', '.join(ENGINES)}")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 cores: one for the fetching process, one for the S3 servers")
    workdir = args.workdir.resolve()
    print(f"sample model {args.model} …", file=sys.stderr, flush=True)
    model_dir = make_sample_model(args.model, workdir / "models" / args.model)
    # The S3 servers inherit this process's core; every measured child moves to the other.
    os.sched_setaffinity(0, {SERVER_CORE})
    cells = Cells(workdir)
    size = 0
    with ExitStack() as stack:
        servers: dict[str, tuple[S3Process, str]] = {}
        nets: list[tuple[str, ShapedNetwork | None]] = [("loopback", None)]
        try:
            nets.insert(0, ("capped", stack.enter_context(ShapedNetwork(args.mbit))))
        except NetworkSetupError as exc:
            print(f"no capped network: {exc}", file=sys.stderr)
        for net, shaped in nets:
            server = stack.enter_context(S3Process(shaped))
            client = server.client()
            client.create_bucket(Bucket=BUCKET)
            # Unslimmed: the fp32 SavedModel as users ship it today, same bytes for every engine.
            pushed = push(
                model_dir,
                f"s3://{BUCKET}/m",
                name=args.model,
                version="1",
                s3_client=client,
                slim=False,
            )
            size = pushed.manifest.total_bytes
            servers[net] = (server, pushed.uri)
        print(f"pushed {size / 1e6:.0f} MB to {len(servers)} server(s)", file=sys.stderr)
        for rep in range(args.repeats):
            for engine in _rotated(engines, rep):
                cells.run("import", "import", engine, {})
            for net, (server, uri) in servers.items():
                for engine in _rotated(engines, rep):
                    cells.run(f"fetch-{net}", "fetch", engine, server.env(), uri)
            server, uri = servers.get("capped", servers["loopback"])
            for engine in _rotated(["none", *engines], rep):
                cells.run("overlap", "overlap", engine, server.env(), uri)
            print(f"repetition {rep + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    shutil.rmtree(cells.cache, ignore_errors=True)

    overlap_net = "capped" if "fetch-capped/" + engines[0] in cells.runs else "loopback"
    tf_alone = cells.median("overlap", "none", "tf_import_s")
    rows: list[dict[str, Any]] = []
    for engine in engines:
        tf = cells.median("overlap", engine, "tf_import_s")
        cpu = cells.median("fetch-loopback", engine, "cpu_s")
        layer, dists = layer_bytes(engine)
        rows.append(
            {
                "engine": engine,
                "package": PACKAGES[engine],
                "tf_import_with_fetch_s": tf,
                "tf_import_delta_s": None if tf is None or tf_alone is None else tf - tf_alone,
                "fetch_capped_s": cells.median("fetch-capped", engine, "fetch_s"),
                "fetch_loopback_s": cells.median("fetch-loopback", engine, "fetch_s"),
                "cpu_s_per_100mb": None if cpu is None else cpu / (size / 1e8),
                "import_s": cells.median("import", engine, "import_s"),
                "layer_bytes": layer,
                "layer_dists": dists,
                "boto3_config": BOTO3_CONFIG[engine],
            }
        )
    result = {
        "benchmark": "fetch_engines",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": args.model,
        "bytes": size,
        "repeats": args.repeats,
        "mbit": args.mbit if "fetch-capped/" + engines[0] in cells.runs else None,
        "overlap_network": overlap_net,
        "cpus": os.cpu_count(),
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
        "tf_import_alone_s": tf_alone,
        "rows": rows,
        "runs": cells.runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))

    print(
        f"\n{args.model} {size / 1e6:.0f} MB, medians of {args.repeats}; fetch process on core "
        f"{FETCH_CORE}, S3 on core {SERVER_CORE}; import tensorflow alone {_fmt(tf_alone)} s "
        f"(overlap on {overlap_net}); load {' '.join(result['loadavg_after'])}"
    )
    head = (
        "| engine | import tf with fetch (s) | vs alone (s) | fetch capped (s) "
        "| fetch loopback (s) | CPU s / 100 MB | engine import (s) | layer adds (MB) "
        "| endpoint, region, keys as boto3 |"
    )
    print(head)
    print("|" + "---|" * head.count(" | ") + "---|")
    for r in rows:
        print(
            f"| {r['engine']} | {_fmt(r['tf_import_with_fetch_s'])} | "
            f"{_fmt(r['tf_import_delta_s'], '+.2f')} | {_fmt(r['fetch_capped_s'])} | "
            f"{_fmt(r['fetch_loopback_s'])} | {_fmt(r['cpu_s_per_100mb'])} | "
            f"{_fmt(r['import_s'], '.3f')} | "
            f"{r['layer_bytes'] / 1e6:.1f} ({', '.join(r['layer_dists']) or 'in runtime'}) | "
            f"{r['boto3_config']} |"
        )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
