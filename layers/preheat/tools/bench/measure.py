"""The measuring itself: priming, cold starts round robin, bursts, against one emulator.

Every cold start is a function of its own in the local Lambda, so its first invoke always
meets a fresh environment; the environment is killed once its warm requests are done.
Cold starts are interleaved across strategies (round robin), so that a drift in the
machine's load touches every strategy alike.

A SnapStart strategy's cold start publishes its function's version first (INIT and the
before-snapshot hooks run then, unmeasured by the client), then invokes that version: the
first invoke restores the environment the publish parked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from preheat.tools.bench import logs, parity
from preheat.tools.bench.context import FUNCTION_TIMEOUT_S, INIT_TIMEOUT_S
from preheat.tools.bench.protocols import JSON, ProtocolBench
from preheat.tools.bench.records import (
    Burst,
    BurstEnvironment,
    ColdStart,
    Parity,
    ProtocolRun,
    StrategyRun,
)
from preheat.tools.bench.strategies import Deployment

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

    from preheat.tools.emulator import Emulator, InvocationRecord

Say = Callable[[str], None]


@dataclass
class Call:
    ms: float
    body: dict[str, Any]
    error: str | None
    request_id: str | None = None


def invoke(client: LambdaClient, name: str, payload: bytes) -> Call:
    """One invoke through the Invoke API; a failure of any kind is an error on the call."""
    from botocore.exceptions import BotoCoreError, ClientError

    start = time.perf_counter()
    try:
        resp = client.invoke(FunctionName=name, Payload=payload)
        body_raw = resp["Payload"].read()
    except (BotoCoreError, ClientError) as exc:
        ms = (time.perf_counter() - start) * 1000
        return Call(ms, {}, f"the invoke failed: {type(exc).__name__}: {exc}")
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
    return Call(ms, body if isinstance(body, dict) else {}, error, request_id)


@dataclass(frozen=True)
class Facts:
    environment: str | None
    init: dict[str, Any]
    invocations: tuple[InvocationRecord, ...]
    # INIT ran into the limit and was run again inside the invoke.
    init_retried: bool = False
    # The environment's own INIT (for a restored one: the INIT before its snapshot).
    environment_init_ms: float | None = None


def environment_facts(emu: Emulator, name: str) -> Facts:
    """The function's (single) environment: its id, init report and invocation records."""
    stats = emu.stats(name)
    env = stats.environments[0] if stats.environments else None
    if env is None:
        return Facts(None, {}, stats.invocations)
    log = emu.log(env.env_id)
    return Facts(
        env.env_id,
        logs.parse(log).init,
        stats.invocations,
        logs.init_timed_out(log),
        env.init_duration_ms,
    )


def kill(emu: Emulator, name: str) -> None:
    for env in emu.stats(name).environments:
        emu.kill_environment(env.env_id)


class Measure:
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

    def cold_start(
        self, strategy: str, index: int, fname: str, qualifier: str | None = None
    ) -> ColdStart:
        """One fresh environment of `fname` (`qualifier`: of that version): its first
        answer, the warm requests after it and what its log and REPORT lines say."""
        cs = ColdStart(strategy=strategy, index=index)
        target = f"{fname}:{qualifier}" if qualifier else fname
        try:
            first = invoke(self.client, target, self.payloads[0])
            cs.first_response_ms = round(first.ms, 3)
            calls = [(0, first)]
            if first.error is None:
                for k in range(1, self.warm_requests + 1):
                    j = k % len(self.payloads)
                    call = invoke(self.client, target, self.payloads[j])
                    if call.error:
                        cs.error = f"warm request {k}: {call.error}"
                        break
                    cs.warm_ms.append(round(call.ms, 3))
                    calls.append((j, call))
            else:
                cs.error = first.error
            facts = environment_facts(self.emu, fname)
            cs.environment, init, records = facts.environment, facts.init, facts.invocations
            cs.init_retried = facts.init_retried
            handed_back = init.get("handed_back")
            cs.init_handed_back = handed_back if isinstance(handed_back, bool) else None
            cold = next((r for r in records if r.cold), None)
            if cold is not None:
                cs.init_ms = cold.init_duration_ms
                cs.first_duration_ms = round(cold.duration_ms, 3)
                if cold.restore_duration_ms is not None:
                    cs.restore_ms = round(cold.restore_duration_ms, 3)
                    cs.snapshot_init_ms = facts.environment_init_ms
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
            kill(self.emu, fname)
        return cs

    def restore(self, strategy: str, index: int, fname: str) -> ColdStart:
        """Publish `fname`'s version (its snapshot taken), then cold-start that version."""
        start = time.perf_counter()
        try:
            version = self.emu.publish_version(fname)
        except Exception as exc:  # a failed publish is this cold start's result
            kill(self.emu, fname)
            return ColdStart(strategy, index, error=f"publishing failed: {exc}")
        publish_ms = round((time.perf_counter() - start) * 1000, 3)
        if version.state != "Active":
            kill(self.emu, fname)
            reason = version.state_reason or version.state
            return ColdStart(strategy, index, publish_ms=publish_ms,
                             error=f"publishing failed: {reason}")  # fmt: skip
        cs = self.cold_start(strategy, index, fname, qualifier=version.number)
        cs.publish_ms = publish_ms
        return cs

    def _protocols(
        self, fname: str, env_id: str, calls: list[tuple[int, Call]], json_parity: Parity | None
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
        results: list[tuple[float, Call] | None] = [None] * size
        errors: list[str | None] = [None] * size

        def one(i: int) -> None:
            ready.wait()
            go.wait()
            try:
                call = invoke(self.client, fname, self.payloads[0])
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
            kill(self.emu, fname)


class Campaign:
    """The measured part of a run, in order: priming, cold starts round robin, bursts.

    `fnames[strategy]` are the strategy's functions (see runner.function_configs): one per
    cold start, then its priming and burst functions when it has them.
    """

    def __init__(
        self,
        measure: Measure,
        plans: Mapping[str, Deployment],
        fnames: Mapping[str, list[str]],
        runs: Mapping[str, StrategyRun],
        say: Say,
    ) -> None:
        self.measure = measure
        self.plans = plans
        self.fnames = fnames
        self.runs = runs
        self.say = say

    def run(self, cold_starts: int, burst: int) -> list[Burst]:
        self.prime()
        active = [s for s in self.plans if self.runs[s].available]
        self.cold_starts(active, cold_starts)
        if not burst:
            return []
        return self.bursts([s for s in active if not self.plans[s].snapstart], burst)

    def prime(self) -> None:
        """Seed each shared disk tier with one unmeasured environment; a failure drops the
        strategy with the reason."""
        for strategy, dep in self.plans.items():
            if dep.prime:
                self.say(f"{strategy}: seeding its disk tier with one unmeasured environment")
                primed = invoke(self.measure.client, f"{strategy}-prime", self.measure.payloads[0])
                kill(self.measure.emu, f"{strategy}-prime")
                if primed.error:
                    self.runs[strategy].available = False
                    self.runs[strategy].reason = f"seeding failed: {primed.error}"

    def cold_starts(self, active: Sequence[str], count: int) -> None:
        total = len(active) * count
        done = 0
        for i in range(count):
            for strategy in active:
                fname = self.fnames[strategy][i]
                if self.plans[strategy].snapstart:
                    self.say(f"{strategy}: publishing a version (its INIT and snapshot)")
                    cs = self.measure.restore(strategy, i, fname)
                else:
                    cs = self.measure.cold_start(strategy, i, fname)
                self.runs[strategy].cold_starts.append(cs)
                done += 1
                self.say(f"[{done}/{total}] {strategy} cold start {i + 1}: " + brief(cs))

    def bursts(self, active: Sequence[str], size: int) -> list[Burst]:
        bursts = []
        for strategy in active:
            self.say(f"{strategy}: burst of {size} cold starts at once")
            b = self.measure.burst(strategy, f"{strategy}-burst", size)
            bursts.append(b)
            answered = "-" if b.all_answered_ms is None else f"{b.all_answered_ms:.0f} ms"
            self.say(f"{strategy}: all {size} answered after {answered}")
        return bursts


def brief(cs: ColdStart) -> str:
    if cs.error:
        return f"failed: {cs.error}"
    first = "-" if cs.first_response_ms is None else f"{cs.first_response_ms / 1000:.2f} s"
    if cs.restore_ms is not None:
        init = "-" if cs.snapshot_init_ms is None else f"{cs.snapshot_init_ms / 1000:.2f} s"
        return f"first response {first}, restore {cs.restore_ms:.0f} ms (INIT {init} at publish)"
    init = "-" if cs.init_ms is None else f"{cs.init_ms / 1000:.2f} s"
    return f"first response {first}, INIT {init}"
