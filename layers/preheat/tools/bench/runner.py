"""Run the benchmark: S3 (shaped or not), each strategy's function, cold starts and bursts.

Every cold start is a function of its own in the local Lambda, so its first invoke always
meets a fresh environment; the environment is killed once its warm requests are done.
Cold starts are interleaved across strategies (round robin), so that a drift in the
machine's load touches every strategy alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson

from preheat import aws
from preheat.exceptions import ConfigurationError, PreheatError
from preheat.tools.bench import initlimit, logs, network, parity, reference
from preheat.tools.bench import strategies as registry
from preheat.tools.bench.protocols import JSON, ProtocolBench
from preheat.tools.bench.records import (
    BenchResult,
    Burst,
    BurstEnvironment,
    ColdStart,
    NetworkInfo,
    Parity,
    ProtocolRun,
    StrategyRun,
)
from preheat.tools.bench.strategies import Context, Deployment, Strategy
from preheat.tools.emulator.resources import (
    CoreSplit,
    available_cpus,
    format_cpus,
    lambda_vcpus,
    split_cores,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

    from preheat.tools.emulator import Emulator, InvocationRecord

Say = Callable[[str], None]
NETWORKS = ("loopback", "lambda")
BUCKET = "preheat-bench"
# The longest INIT any rule allows (see initlimit.py): what a client waits for at most.
INIT_TIMEOUT_S = initlimit.LIFTED_INIT_TIMEOUT_S
FUNCTION_TIMEOUT_S = 300.0
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


# ---------------------------------------------------------------------------- lifecycle


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every `finally` cleans up (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start_network(opts: Options, stack: contextlib.ExitStack, say: Say) -> tuple[
    network.ShapedNetwork | None, NetworkInfo
]:  # fmt: skip
    if opts.network == "loopback":
        return None, NetworkInfo("loopback", False)
    try:
        net = stack.enter_context(network.ShapedNetwork(opts.bandwidth_mbit))
        measured = network.measure_mbit(net)
    except network.NetworkSetupError as exc:
        say(f"network: could not shape ({exc}); running unshaped on loopback")
        return None, NetworkInfo("lambda", False, opts.bandwidth_mbit, None, str(exc))
    say(f"network: S3 behind {opts.bandwidth_mbit:g} Mbit/s, measured {measured:.0f} Mbit/s")
    return net, NetworkInfo("lambda", True, opts.bandwidth_mbit, round(measured, 1))


def _split_cores(memory_mb: int, say: Say) -> CoreSplit:
    """S3 on the last core, the functions on the others; all cores when the function's
    share needs them (then S3's work competes with the function's, and this says so)."""
    split = split_cores(1)
    if split.disjoint and lambda_vcpus(memory_mb) > len(split.functions):
        say(f"resources: {memory_mb} MB needs {lambda_vcpus(memory_mb):.2f} vCPUs; the "
            "functions get every core, the S3 server's included")  # fmt: skip
        return CoreSplit(split.server, available_cpus())
    if not split.disjoint:
        say("resources: one core only: the S3 server and the functions share it")
    return split


def _model(opts: Options, say: Say) -> tuple[Path, str]:
    if opts.model is not None:
        path = Path(opts.model).resolve()
        name = re.sub(r"[^A-Za-z0-9._-]", "-", path.name).strip("-.") or "model"
        return path, name[:64]
    from preheat.tools.sample_models import make_sample_model

    assert opts.sample is not None
    say(f"sample model {opts.sample} (random weights, seed {opts.seed}; reused when present)")
    target = make_sample_model(opts.sample, opts.out / "model" / opts.sample, opts.seed)
    return target.resolve(), opts.sample


def _lambda_client(endpoint: str, pool: int) -> LambdaClient:
    from preheat.tools.local.s3 import DUMMY_KEY_ID, DUMMY_SECRET, REGION

    client: LambdaClient = aws.client(
        "lambda",
        endpoint_url=endpoint,
        credentials=(DUMMY_KEY_ID, DUMMY_SECRET),
        region=REGION,
        # One attempt: a retried invoke would hide a failure and pay a second INIT.
        retries=aws.NO_RETRIES,
        read_timeout=INIT_TIMEOUT_S + FUNCTION_TIMEOUT_S,
        connect_timeout=10,
        pool=max(pool, 10),
    )
    return client


# ---------------------------------------------------------------------------- measuring


@dataclass
class _Call:
    ms: float
    body: dict[str, Any]
    error: str | None
    request_id: str | None = None


def _invoke(client: LambdaClient, name: str, payload: bytes) -> _Call:
    """One invoke through the Invoke API; a failure of any kind is an error on the call."""
    from botocore.exceptions import BotoCoreError, ClientError

    start = time.perf_counter()
    try:
        resp = client.invoke(FunctionName=name, Payload=payload)
        body_raw = resp["Payload"].read()
    except (BotoCoreError, ClientError) as exc:
        ms = (time.perf_counter() - start) * 1000
        return _Call(ms, {}, f"the invoke failed: {type(exc).__name__}: {exc}")
    ms = (time.perf_counter() - start) * 1000
    try:
        body = orjson.loads(body_raw) if body_raw else {}
    except orjson.JSONDecodeError:
        body = {}
    error = None
    if resp.get("FunctionError"):
        error = f"{body.get('errorType', 'Error')}: {body.get('errorMessage', body_raw[:200])}"
    elif not isinstance(body, dict) or "outputs" not in body:
        detail = body.get("error", body) if isinstance(body, dict) else body
        error = f"no outputs in the answer: {str(detail)[:200]}"
    request_id = resp.get("ResponseMetadata", {}).get("RequestId")
    return _Call(ms, body if isinstance(body, dict) else {}, error, request_id)


@dataclass(frozen=True)
class _Facts:
    environment: str | None
    init: dict[str, Any]
    invocations: tuple[InvocationRecord, ...]
    # INIT ran into the limit and was run again inside the invoke.
    init_retried: bool = False


def _environment_facts(emu: Emulator, name: str) -> _Facts:
    """The function's (single) environment: its id, init report and invocation records."""
    stats = emu.stats(name)
    env = stats.environments[0] if stats.environments else None
    if env is None:
        return _Facts(None, {}, stats.invocations)
    log = emu.log(env.env_id)
    return _Facts(env.env_id, logs.parse(log).init, stats.invocations, logs.init_timed_out(log))


def _kill(emu: Emulator, name: str) -> None:
    for env in emu.stats(name).environments:
        emu.kill_environment(env.env_id)


class _Measure:
    """Cold starts and bursts against one emulator, with the same inputs for everyone."""

    def __init__(
        self,
        emu: Emulator,
        client: LambdaClient,
        inputs: Sequence[parity.Inputs],
        expected: Sequence[parity.Outputs],
        warm_requests: int,
        speaking: frozenset[str] = frozenset(),
    ) -> None:
        self.emu = emu
        self.client = client
        self.expected = expected
        self.warm_requests = warm_requests
        self.payloads = [orjson.dumps({"inputs": parity.to_json(x)}) for x in inputs]
        # Strategies whose function speaks the serving protocols beside JSON.
        self.speaking = speaking
        self.protocols = ProtocolBench(emu, inputs, expected, warm_requests)

    def cold_start(self, strategy: str, index: int, fname: str) -> ColdStart:
        cs = ColdStart(strategy=strategy, index=index)
        try:
            first = _invoke(self.client, fname, self.payloads[0])
            cs.first_response_ms = round(first.ms, 3)
            calls = [(0, first)]
            if first.error is None:
                for k in range(1, self.warm_requests + 1):
                    j = k % len(self.payloads)
                    call = _invoke(self.client, fname, self.payloads[j])
                    if call.error:
                        cs.error = f"warm request {k}: {call.error}"
                        break
                    cs.warm_ms.append(round(call.ms, 3))
                    calls.append((j, call))
            else:
                cs.error = first.error
            facts = _environment_facts(self.emu, fname)
            cs.environment, init, records = facts.environment, facts.init, facts.invocations
            cs.init_retried = facts.init_retried
            handed_back = init.get("handed_back")
            cs.init_handed_back = handed_back if isinstance(handed_back, bool) else None
            cold = next((r for r in records if r.cold), None)
            if cold is not None:
                cs.init_ms = cold.init_duration_ms
                cs.first_duration_ms = round(cold.duration_ms, 3)
            memory = [r.max_memory_used_mb for r in records]
            cs.max_memory_mb = float(max(memory)) if memory else None
            cs.phases_ms = logs.phases_ms(init)
            cs.bytes_by_tier = logs.bytes_by_tier(init)
            cs.fetch_cpu_ms = logs.fetch_cpu_ms(init)
            ok = [(j, c) for j, c in calls if c.error is None]
            if ok:
                cs.parity = parity.compare(
                    [self.expected[j] for j, _ in ok],
                    [parity.from_json(c.body["outputs"], self.expected[j]) for j, c in ok],
                )
            if strategy in self.speaking and cs.environment and len(calls) > 1 and not cs.error:
                cs.protocols = self._protocols(fname, cs.environment, calls, cs.parity)
        finally:
            _kill(self.emu, fname)
        return cs

    def _protocols(
        self, fname: str, env_id: str, calls: list[tuple[int, _Call]], json_parity: Parity | None
    ) -> list[ProtocolRun]:
        """The JSON warm requests as a protocol run, then the same through the URL."""
        (_, first), *warm = calls
        json_run = ProtocolRun(
            JSON,
            request_bytes=[len(self.payloads[j]) for j, _ in warm],
            warm_ms=[round(c.ms, 3) for _, c in warm],
            parity=json_parity,
        )
        answers = {j: parity.from_json(c.body["outputs"], self.expected[j]) for j, c in calls}
        return self.protocols.measure(fname, env_id, json_run, answers, first.request_id)

    def burst(self, strategy: str, fname: str, size: int) -> Burst:
        """`size` invokes released at the same moment: each finds every environment busy."""
        go = threading.Event()
        ready = threading.Barrier(size + 1)
        results: list[tuple[float, _Call] | None] = [None] * size
        errors: list[str | None] = [None] * size

        def one(i: int) -> None:
            ready.wait()
            go.wait()
            try:
                call = _invoke(self.client, fname, self.payloads[0])
                results[i] = (time.perf_counter(), call)
            except Exception as exc:  # one failed environment is a result, not a crash
                errors[i] = f"{type(exc).__name__}: {exc}"

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(size)]
        for t in threads:
            t.start()
        ready.wait()
        start = time.perf_counter()
        go.set()
        for t in threads:
            t.join(INIT_TIMEOUT_S + FUNCTION_TIMEOUT_S + 30)
        try:
            # The Invoke API's request id names the invocation record, hence its environment.
            by_request = {r.request_id: r for r in self.emu.stats(fname).invocations}
            envs = []
            for i in range(size):
                res = results[i]
                rec = by_request.get(res[1].request_id or "") if res else None
                envs.append(
                    BurstEnvironment(
                        environment=rec.env_id if rec else None,
                        init_ms=rec.init_duration_ms if rec else None,
                        first_response_ms=round(res[1].ms, 3) if res else None,
                        error=res[1].error if res else errors[i],
                    )
                )
            done = [r[0] for r in results if r is not None and r[1].error is None]
            all_ms = (max(done) - start) * 1000 if len(done) == size else None
            return Burst(strategy, size, round(all_ms, 3) if all_ms else None, envs)
        finally:
            _kill(self.emu, fname)


# ---------------------------------------------------------------------------- the run


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
        if burst:
            fnames.append(f"{strategy}-burst")
        names[strategy] = fnames
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
                    init_timeout_s=rule.init_timeout_s,
                    # Measured environments are killed explicitly; this only bounds leftovers.
                    idle_timeout_s=600.0,
                    python=dep.python or sys.executable,
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


def run(opts: Options, say: Say = lambda _m: None) -> Outcome:
    """Measure every chosen strategy; write the JSON and the chart into `opts.out`."""
    from preheat.tools.bench import chart
    from preheat.tools.bench.summary import result_dict
    from preheat.tools.emulator import Emulator
    from preheat.tools.local.s3 import S3Process
    from preheat.tools.push import prepare as describe

    chosen = registry.parse(opts.strategies)
    rule = initlimit.rule(opts.init_limit)
    if opts.functions_dir is None:
        functions_dir = registry.default_functions_dir().resolve()
    else:
        # Only a folder the user named is checked against the option that named it.
        functions_dir = opts.functions_dir.resolve()
        if not (functions_dir / "inference" / "app.py").is_file():
            raise ConfigurationError(
                "--functions-dir",
                str(functions_dir),
                "give a functions/ folder holding inference/app.py and baseline/app.py",
            )
    # Absolute: environments run with their code folder as cwd, and the managed runtime's
    # start script and layers live under `out`.
    out = Path(opts.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = _load_average()
    runs = {s.name: StrategyRun(s.name, s.description) for s in chosen}
    for s in chosen:
        reason = s.unavailable()
        if reason:
            runs[s.name].available, runs[s.name].reason = False, reason

    with terminate_as_interrupt(), contextlib.ExitStack() as stack:
        if not opts.keep_work:
            stack.callback(shutil.rmtree, work, True)
        source, name = _model(opts, say)
        manifest = describe(source, name=name, version="1")
        net, net_info = _start_network(opts, stack, say)
        cores = _split_cores(opts.memory_mb, say)
        s3 = stack.enter_context(S3Process(net, cpus=frozenset(cores.server)))
        client = s3.client()
        client.create_bucket(Bucket=BUCKET)
        ctx = Context(
            source=source,
            name=name,
            version="1",
            workdir=work,
            functions_dir=functions_dir,
            bucket=BUCKET,
            s3=client,
            s3_env=s3.env(),
            progress=say,
        )
        plans = _prepare(chosen, ctx, runs, say)
        inputs = parity.request_inputs(manifest.signature, opts.samples, opts.seed)
        say("computing the source model's outputs for the parity check")
        expected = reference.compute(source, inputs, cpus=cores.functions)
        constant = parity.constant_outputs(expected)
        if constant:
            say("note: the source model gives every input the same constant outputs; "
                "parity cannot tell strategies apart on it")  # fmt: skip

        configs, fnames = _configs(plans, opts.cold_starts, opts.burst, opts.memory_mb, rule)
        say(rule.text())
        bursts: list[Burst] = []
        resources: dict[str, Any] = {}
        if plans:
            emu = stack.enter_context(
                Emulator(
                    configs,
                    max_concurrency=max(16, opts.burst + 1),
                    workdir=work / "emulator",
                    cpus=cores.functions,
                )
            )
            model = emu.resource_model(configs[0].name)
            resources = {"model": model.describe(), "s3_cores": list(cores.server),
                         "notes": [*model.notes, *emu.notices]}  # fmt: skip
            say(f"resources: {model.describe()}; S3 server on cores "
                f"{format_cpus(cores.server)}")  # fmt: skip
            for note in resources["notes"]:
                say(f"resources: {note}")
            lam = _lambda_client(emu.endpoint_url, opts.burst + 2)
            speaking = frozenset(s.name for s in chosen if not isinstance(s, registry.Baseline))
            measure = _Measure(emu, lam, inputs, expected, opts.warm_requests, speaking)
            for strategy, dep in plans.items():
                if dep.prime:
                    say(f"{strategy}: seeding its disk tier with one unmeasured environment")
                    primed = _invoke(lam, f"{strategy}-prime", measure.payloads[0])
                    _kill(emu, f"{strategy}-prime")
                    if primed.error:
                        runs[strategy].available = False
                        runs[strategy].reason = f"seeding failed: {primed.error}"
            active = [s for s in plans if runs[s].available]
            total = len(active) * opts.cold_starts
            done = 0
            for i in range(opts.cold_starts):
                for strategy in active:
                    cs = measure.cold_start(strategy, i, fnames[strategy][i])
                    runs[strategy].cold_starts.append(cs)
                    done += 1
                    say(f"[{done}/{total}] {strategy} cold start {i + 1}: " + _brief(cs))
            if opts.burst:
                for strategy in active:
                    say(f"{strategy}: burst of {opts.burst} cold starts at once")
                    b = measure.burst(strategy, f"{strategy}-burst", opts.burst)
                    bursts.append(b)
                    answered = "-" if b.all_answered_ms is None else f"{b.all_answered_ms:.0f} ms"
                    say(f"{strategy}: all {opts.burst} answered after {answered}")

    result = BenchResult(
        created=created,
        model={
            "name": name,
            "path": str(source),
            "bytes": manifest.total_bytes,
            "files": len(manifest.files),
            "fingerprint": manifest.source.get("fingerprint"),
            "signature": manifest.signature.key,
            "constant_outputs": constant,
        },
        network=net_info,
        settings={
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
            "cpus": os.cpu_count(),
            # Other work on the machine stretches every phase; ratios in one run stay fair.
            "load_average": {"start": load_start, "end": _load_average()},
        },
        strategies=list(runs.values()),
        bursts=bursts,
    )
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


def _brief(cs: ColdStart) -> str:
    if cs.error:
        return f"failed: {cs.error}"
    first = "-" if cs.first_response_ms is None else f"{cs.first_response_ms / 1000:.2f} s"
    init = "-" if cs.init_ms is None else f"{cs.init_ms / 1000:.2f} s"
    return f"first response {first}, INIT {init}"
