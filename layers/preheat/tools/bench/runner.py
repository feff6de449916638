"""Run the benchmark as a short pipeline over parts wired once.

`run` checks the options, then inside one `BenchContext` (context.py: network, S3 server,
emulator, the work folder) prepares each strategy's deployment, computes the source model's
reference outputs, has a `Campaign` (measure.py) prime, cold-start and burst the functions,
and writes what was measured as JSON and a chart (summary.py, chart.py).
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from preheat.exceptions import ConfigurationError, PreheatError
from preheat.tools.bench import initlimit, parity, reference
from preheat.tools.bench import strategies as registry
from preheat.tools.bench.context import (
    FUNCTION_TIMEOUT_S,
    INIT_TIMEOUT_S,
    BenchContext,
    SourceModel,
    lambda_client,
)
from preheat.tools.bench.measure import Campaign, Measure
from preheat.tools.bench.records import BenchResult, Burst, StrategyRun
from preheat.tools.bench.strategies import Context, Deployment, Strategy

Say = Callable[[str], None]
NETWORKS = ("loopback", "lambda")
MAX_COLD_STARTS = 50
MAX_WARM_REQUESTS = 1000
MAX_BURST = 16
JSON_NAME = "bench.json"
CHART_NAME = "bench.png"


@dataclass(frozen=True)
class Options:
    model: Path | None = None
    sample: str | None = None
    strategies: str | None = None
    network: str = "loopback"
    bandwidth_mbit: float = 600.0
    cold_starts: int = 3
    warm_requests: int = 20
    burst: int = 0
    out: Path = Path("bench-results")
    # One vCPU, as Lambda gives 1,769 MB (see the emulator's resource model).
    memory_mb: int = 1769
    # Distinct inputs the requests cycle through (parity is measured on each).
    samples: int = 4
    seed: int = 0
    functions_dir: Path | None = None
    keep_work: bool = False
    # "lifted" (INIT measured whole) or "lambda" (Lambda's 10 s, retried in the invoke).
    init_limit: str = initlimit.DEFAULT
    # Add the opt-in SnapStart strategies to those chosen (see strategies.py).
    snapstart: bool = False

    def __post_init__(self) -> None:
        initlimit.rule(self.init_limit)  # a ConfigurationError naming --init-limit
        if (self.model is None) == (self.sample is None):
            raise ConfigurationError("--model/--sample", None, "give exactly one of them")
        if self.model is not None and not (Path(self.model) / "saved_model.pb").is_file():
            raise ConfigurationError(
                "--model", str(self.model), "give a SavedModel directory (with saved_model.pb)"
            )
        if self.network not in NETWORKS:
            raise ConfigurationError("--network", self.network, f"use {' or '.join(NETWORKS)}")
        if not self.bandwidth_mbit > 0:
            raise ConfigurationError("--bandwidth-mbit", self.bandwidth_mbit, "use a rate > 0")
        if not 1 <= self.cold_starts <= MAX_COLD_STARTS:
            raise ConfigurationError(
                "--cold-starts", self.cold_starts, f"use 1 to {MAX_COLD_STARTS}"
            )
        if not 0 <= self.warm_requests <= MAX_WARM_REQUESTS:
            raise ConfigurationError(
                "--warm-requests", self.warm_requests, f"use 0 to {MAX_WARM_REQUESTS}"
            )
        if self.burst != 0 and not 2 <= self.burst <= MAX_BURST:
            raise ConfigurationError(
                "--burst", self.burst, f"use 2 to {MAX_BURST} environments, or 0 for none"
            )
        if not 1 <= self.samples <= 64:
            raise ConfigurationError("--samples", self.samples, "use 1 to 64")


@dataclass
class Outcome:
    doc: dict[str, Any]
    json_path: Path
    chart_path: Path | None
    result: BenchResult = field(repr=False)


# ---------------------------------------------------------------------------- the run


def run(opts: Options, say: Say = lambda _m: None) -> Outcome:
    """Measure every chosen strategy; write the JSON and the chart into `opts.out`."""
    chosen = registry.parse(opts.strategies, opts.snapstart)
    rule = initlimit.rule(opts.init_limit)
    functions_dir = _functions_dir(opts)
    out, work = _fresh_folders(opts)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = _load_average()
    runs = _strategy_runs(chosen)
    bursts: list[Burst] = []
    with BenchContext(opts, work, say) as ctx:
        model = ctx.model()
        ctx.start_s3()
        plans = _prepare(chosen, ctx.strategy_context(model, functions_dir), runs, say)
        ref = _reference(model, opts, ctx.function_cpus, say)
        configs, fnames = _configs(plans, opts.cold_starts, opts.burst, opts.memory_mb, rule)
        say(rule.text())
        if plans:
            # No spare snapshots: each SnapStart cold start restores the one its version's
            # publish parked, and no INIT runs in the background beside a measurement.
            emu = ctx.start_emulator(
                configs, max_concurrency=max(16, opts.burst + 1), snapshot_spares=0
            )
            lam = lambda_client(emu.endpoint_url, opts.burst + 2)
            # The URL serves $LATEST, not the restored version: SnapStart's are JSON only.
            speaking = frozenset(
                s.name for s in chosen if not isinstance(s, registry.Baseline) and not s.snapstart
            )
            measure = Measure(emu, lam, ref.inputs, ref.expected, opts.warm_requests, speaking)
            with _no_full_collections():
                bursts = Campaign(measure, plans, fnames, runs, say).run(
                    opts.cold_starts, opts.burst
                )
    result = BenchResult(
        created=created,
        model=_model_facts(model, ref),
        network=ctx.network_info,
        settings=_settings(opts, rule, ctx.resources, ctx.environments, load_start),
        strategies=list(runs.values()),
        bursts=bursts,
    )
    return _write(result, out, say)


@contextlib.contextmanager
def _no_full_collections() -> Iterator[None]:
    """Keep the garbage collector's full passes out of the measurements.

    The emulator answers in this process, which by now holds TensorFlow's Python objects
    (the slimmer ran here) and the bench's own: a full collection then takes 150 to 340 ms,
    and one triggered by the allocations of an invoke (the Invoke API parses each 1.6 MB
    request) lands inside that invoke's measured time. Frozen, the objects made so far
    are never scanned again, so a full pass covers only what the measurements allocate.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# ---------------------------------------------------------------------------- the steps


def _functions_dir(opts: Options) -> Path:
    if opts.functions_dir is None:
        return registry.default_functions_dir().resolve()
    # Only a folder the user named is checked against the option that named it.
    functions_dir = opts.functions_dir.resolve()
    if not (functions_dir / "inference" / "app.py").is_file():
        raise ConfigurationError(
            "--functions-dir",
            str(functions_dir),
            "give a functions/ folder holding inference/app.py and baseline/app.py",
        )
    return functions_dir


def _fresh_folders(opts: Options) -> tuple[Path, Path]:
    """`out` and an empty `out/work`.

    Absolute: environments run with their code folder as cwd, and the managed runtime's
    start script and layers live under `out`.
    """
    out = Path(opts.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    return out, work


def _strategy_runs(chosen: Sequence[Strategy]) -> dict[str, StrategyRun]:
    """One record per chosen strategy; one missing a part is marked so, with the reason."""
    runs = {s.name: StrategyRun(s.name, s.description, snapstart=s.snapstart) for s in chosen}
    for s in chosen:
        reason = s.unavailable()
        if reason:
            runs[s.name].available, runs[s.name].reason = False, reason
    return runs


def _configs(
    plans: Mapping[str, Deployment],
    cold_starts: int,
    burst: int,
    memory_mb: int,
    rule: initlimit.InitRule,
) -> tuple[list[Any], dict[str, list[str]]]:
    from preheat.tools.emulator import FunctionConfig

    configs = []
    names: dict[str, list[str]] = {}
    for strategy, dep in plans.items():
        fnames = [f"{strategy}-{i}" for i in range(cold_starts)]
        if dep.prime:
            fnames.append(f"{strategy}-prime")
        # A SnapStart burst would restore copies of one parked environment: not measured.
        if burst and not dep.snapstart:
            fnames.append(f"{strategy}-burst")
        names[strategy] = fnames
        # Lambda runs a SnapStart version's INIT at publish, not under the 10 s on-demand
        # limit: it is given the longest INIT any rule allows.
        init_timeout_s = INIT_TIMEOUT_S if dep.snapstart else rule.init_timeout_s
        for fname in fnames:
            configs.append(
                FunctionConfig(
                    name=fname,
                    code_dir=dep.code_dir,
                    handler=dep.handler,
                    env={**rule.env, **dep.env},
                    layers=dep.layers,
                    memory_mb=memory_mb,
                    timeout_s=FUNCTION_TIMEOUT_S,
                    init_timeout_s=init_timeout_s,
                    # Measured environments are killed explicitly; this only bounds leftovers.
                    idle_timeout_s=600.0,
                    python=dep.python or sys.executable,
                    snapstart=dep.snapstart,
                )
            )
    return configs, names


def _prepare(
    chosen: Sequence[Strategy], ctx: Context, runs: dict[str, StrategyRun], say: Say
) -> dict[str, Deployment]:
    plans: dict[str, Deployment] = {}
    for s in chosen:
        run = runs[s.name]
        if not run.available:
            say(f"{s.name}: skipped, {run.reason}")
            continue
        say(f"{s.name}: preparing")
        try:
            dep = s.prepare(ctx)
        except PreheatError as exc:
            run.available, run.reason = False, f"could not prepare: {exc}"
            say(f"{s.name}: skipped, {run.reason}")
            continue
        run.artifact_bytes = dep.artifact_bytes
        run.artifact_parity = dict(dep.artifact_parity) if dep.artifact_parity else None
        plans[s.name] = dep
    return plans


@dataclass(frozen=True)
class _Reference:
    """The inputs every strategy is sent and the source model's own outputs for them."""

    inputs: list[parity.Inputs]
    expected: list[parity.Outputs]
    constant: bool
    variety: dict[str, Any] | None


def _reference(model: SourceModel, opts: Options, cpus: Sequence[int], say: Say) -> _Reference:
    inputs = parity.request_inputs(model.manifest.signature, opts.samples, opts.seed)
    say("computing the source model's outputs for the parity check")
    expected = reference.compute(model.path, inputs, cpus=cpus)
    constant = parity.constant_outputs(expected)
    if constant:
        say("note: the source model gives every input the same constant outputs; "
            "parity cannot tell strategies apart on it")  # fmt: skip
    return _Reference(list(inputs), list(expected), constant, parity.variety(expected))


def _model_facts(model: SourceModel, ref: _Reference) -> dict[str, Any]:
    manifest = model.manifest
    return {
        "name": model.name,
        "path": str(model.path),
        "bytes": manifest.total_bytes,
        "files": len(manifest.files),
        "fingerprint": manifest.source.get("fingerprint"),
        "signature": manifest.signature.key,
        "constant_outputs": ref.constant,
        "output_variety": ref.variety,
    }


def _settings(
    opts: Options,
    rule: initlimit.InitRule,
    resources: dict[str, Any],
    environments: dict[str, Any],
    load_start: float | None,
) -> dict[str, Any]:
    return {
        "cold_starts": opts.cold_starts,
        "warm_requests": opts.warm_requests,
        "burst": opts.burst,
        "samples": opts.samples,
        "seed": opts.seed,
        "memory_mb": opts.memory_mb,
        # Which INIT rule the cold starts ran under (Lambda's 10 s, or lifted).
        "init_limit": rule.describe(),
        # What each environment ran under (CPU quota, memory limit, cores) and where S3 ran.
        "resources": resources,
        # The TensorFlow environments' versions against what pip gives their users today.
        "environments": environments,
        "cpus": os.cpu_count(),
        # Other work on the machine stretches every phase; ratios in one run stay fair.
        "load_average": {"start": load_start, "end": _load_average()},
    }


def _write(result: BenchResult, out: Path, say: Say) -> Outcome:
    """The results document as JSON and, when it can be drawn, the chart."""
    from preheat.tools.bench import chart
    from preheat.tools.bench.summary import result_dict

    doc = result_dict(result)
    json_path = out / JSON_NAME
    chart_path: Path | None = out / CHART_NAME
    doc["files"] = {"json": str(json_path), "chart": str(chart_path)}
    try:
        assert chart_path is not None
        chart.draw(doc, chart_path)
    except Exception as exc:  # a chart is a convenience; the numbers must still be written
        say(f"could not draw the chart: {exc}")
        chart_path = None
        doc["files"]["chart"] = None
    json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return Outcome(doc, json_path, chart_path, result)


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
