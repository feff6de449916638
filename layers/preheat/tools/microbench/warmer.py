"""Warmer benchmark on the local Lambda: preheat's verified warmer against the usual one.

For each cycle at concurrency N: did exactly N distinct environments end up warm? The
truth is read from the emulator's own records (which environment served which invoke),
not from what either warmer believes. preheat: `warm_target` (rounds until N distinct ids
answered). The usual approach: N concurrent pings, the handler sleeps a fixed 75 ms, no
verification. Two regimes: `cold` reaps every idle environment before each cycle (each
cycle starts from nothing), `kept` leaves them (each cycle refreshes warm ones). With
--cpu-load K, K busy processes share the host's cores during the cycles, as on a busy
machine or a small warmer function, which widens the spread between the first and the
last ping; with --jitter-ms J, every ping of either approach waits a random 0..J ms before
it is sent (seeded), a stand-in for the latency spread of a real Invoke path that the
loopback emulator does not have. Results: a table on stdout and JSON under bench-results/.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from preheat import aws
from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.warm.engine import warm_target

IDLE_TIMEOUT_S = 600.0
NAIVE_SLEEP_MS = 75


@dataclass
class Cycle:
    approach: str
    regime: str
    asked: int
    # Distinct environments that served this cycle's pings and are alive, per the emulator.
    distinct: int
    # What the warmer itself claimed (the usual approach claims nothing: N).
    claimed: int
    rounds: int
    wall_s: float
    cold_starts: int
    invocations: int
    throttles: int
    # preheat only: errors its pings met, and each round's (hold ms, sent, distinct, new).
    errors: dict[str, int] = field(default_factory=dict)
    round_log: list[tuple[float, int, int, int]] = field(default_factory=list)


class Clock:
    """The emulator's clock, which the benchmark may move forward to make the reaper act."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skew


class JitteredClient:
    """Delays each invoke by a random 0..jitter_s, the same way for both approaches."""

    def __init__(self, client: Any, jitter_s: float, seed: int = 0) -> None:
        self._client = client
        self._jitter_s = jitter_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def invoke(self, **kwargs: Any) -> Any:
        with self._lock:
            delay = self._rng.uniform(0, self._jitter_s)
        time.sleep(delay)
        return self._client.invoke(**kwargs)


def lambda_client(endpoint_url: str, n: int) -> Any:
    return aws.client(
        "lambda",
        endpoint_url=endpoint_url,
        region="us-east-1",
        credentials=("testing", "testing"),
        retries=aws.NO_RETRIES,
        pool=max(10, n),
        read_timeout=60,
    )


def _served(emu: Emulator, name: str, before: set[str]) -> tuple[set[str], int, int]:
    """Environments that served this cycle's pings and are still alive: the warm ones."""
    stats = emu.stats(name)
    new = [i for i in stats.invocations if i.request_id not in before]
    alive = {e.env_id for e in stats.live_environments}
    return {i.env_id for i in new} & alive, sum(1 for i in new if i.cold), len(new)


def _request_ids(emu: Emulator, name: str) -> set[str]:
    return {i.request_id for i in emu.stats(name).invocations}


def preheat_cycle(emu: Emulator, client: Any, n: int, regime: str) -> Cycle:
    before = _request_ids(emu, "verified")
    throttles = emu.stats("verified").throttles
    start = time.monotonic()
    report = warm_target(client, "verified", None, n)
    wall = time.monotonic() - start
    envs, cold, count = _served(emu, "verified", before)
    return Cycle(
        "preheat",
        regime,
        n,
        len(envs),
        report.warm,
        report.rounds,
        wall,
        cold,
        count,
        emu.stats("verified").throttles - throttles,
        report.errors,
        [(r.hold_ms, r.sent, r.distinct, r.new) for r in report.round_details],
    )


def naive_cycle(
    emu: Emulator, client: Any, pool: cf.ThreadPoolExecutor, n: int, regime: str
) -> Cycle:
    before = _request_ids(emu, "naive")
    throttles = emu.stats("naive").throttles

    def ping(_: int) -> None:
        # The usual warmer does not look at the answer, nor at a failure.
        with contextlib.suppress(Exception):
            client.invoke(FunctionName="naive", Payload=b'{"warmer": true}')["Payload"].read()

    start = time.monotonic()
    list(pool.map(ping, range(n)))
    wall = time.monotonic() - start
    envs, cold, count = _served(emu, "naive", before)
    return Cycle(
        "usual (75 ms sleep)",
        regime,
        n,
        len(envs),
        n,
        1,
        wall,
        cold,
        count,
        emu.stats("naive").throttles - throttles,
    )


def reap_all(emu: Emulator, clock: Clock) -> int:
    clock.skew += IDLE_TIMEOUT_S + 1
    reaped = emu.reap_idle()
    # Give the retired processes a moment to go, so they do not compete with the next cycle.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        emu.stats(f).live_environments for f in ("verified", "naive")
    ):
        time.sleep(0.05)
    return len(reaped)


def _burn() -> None:
    while True:
        pass


@contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    burners = [mp.Process(target=_burn, daemon=True) for _ in range(processes)]
    for p in burners:
        p.start()
    try:
        yield
    finally:
        for p in burners:
            p.terminate()
        for p in burners:
            p.join()


def summarise(cycles: list[Cycle]) -> dict[str, Any]:
    exact = [c for c in cycles if c.distinct == c.asked]
    return {
        "approach": cycles[0].approach,
        "regime": cycles[0].regime,
        "cycles": len(cycles),
        "exact_n_fraction": len(exact) / len(cycles),
        "mean_distinct": statistics.mean(c.distinct for c in cycles),
        "min_distinct": min(c.distinct for c in cycles),
        "overclaimed_cycles": sum(1 for c in cycles if c.claimed > c.distinct),
        "mean_rounds": statistics.mean(c.rounds for c in cycles),
        "median_wall_s": statistics.median(c.wall_s for c in cycles),
        "mean_wall_s": statistics.mean(c.wall_s for c in cycles),
        "mean_invocations": statistics.mean(c.invocations for c in cycles),
        "mean_cold_starts": statistics.mean(c.cold_starts for c in cycles),
    }


def table(summaries: list[dict[str, Any]], n: int) -> str:
    head = (
        "approach",
        "regime",
        f"cycles with {n} warm",
        "mean distinct (min)",
        "mean rounds",
        "wall/cycle median",
        "pings/cycle",
    )
    rows = [head]
    for s in summaries:
        rows.append(
            (
                s["approach"],
                s["regime"],
                f"{s['exact_n_fraction'] * 100:.0f}% of {s['cycles']}",
                f"{s['mean_distinct']:.1f} ({s['min_distinct']})",
                f"{s['mean_rounds']:.2f}",
                f"{s['median_wall_s'] * 1000:.0f} ms",
                f"{s['mean_invocations']:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def run(
    n: int,
    cycles: int,
    regimes: list[str],
    load: int,
    jitter_ms: float,
    progress: Callable[[str], None],
    handlers: Path,
) -> list[dict[str, Any]]:
    clock = Clock()
    functions = [
        FunctionConfig(
            name=name,
            code_dir=handlers,
            handler=handler,
            memory_mb=128,
            timeout_s=10.0,
            idle_timeout_s=IDLE_TIMEOUT_S,
        )
        for name, handler in (("verified", "warm_app.handler"), ("naive", "naive_app.handler"))
    ]
    summaries: list[dict[str, Any]] = []
    with (
        Emulator(
            functions, max_concurrency=max(16, 2 * n), clock=clock, reap_interval_s=3600
        ) as emu,
        cf.ThreadPoolExecutor(n) as pool,
        cpu_load(load),
    ):
        client: Any = lambda_client(emu.endpoint_url, n)
        if jitter_ms > 0:
            client = JitteredClient(client, jitter_ms / 1000)
        for regime in regimes:
            by_approach: dict[str, list[Cycle]] = {"preheat": [], "usual": []}
            reap_all(emu, clock)
            for i in range(cycles):
                # Alternate which approach goes first so neither always meets a quieter host.
                order = ("preheat", "usual") if i % 2 == 0 else ("usual", "preheat")
                for approach in order:
                    if regime == "cold":
                        reap_all(emu, clock)
                    if approach == "preheat":
                        cycle = preheat_cycle(emu, client, n, regime)
                    else:
                        cycle = naive_cycle(emu, client, pool, n, regime)
                    by_approach[approach].append(cycle)
                    progress(
                        f"{regime} cycle {i + 1}/{cycles} {cycle.approach}: "
                        f"{cycle.distinct}/{n} distinct, {cycle.rounds} rounds, "
                        f"{cycle.wall_s * 1000:.0f} ms"
                    )
            summaries += [summarise(by_approach["preheat"]), summarise(by_approach["usual"])]
            summaries[-2]["cycle_log"] = [asdict(c) for c in by_approach["preheat"]]
            summaries[-1]["cycle_log"] = [asdict(c) for c in by_approach["usual"]]
    return summaries


def main(argv: list[str] | None = None, handlers: Path | None = None) -> int:
    """`handlers`: the folder of the warm, naive and slow-warm handler apps (a checkout's
    tests/functional/handlers_warm, which scripts/bench_warmer.py passes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", "-n", type=int, default=10, help="N environments to warm")
    parser.add_argument("--cycles", type=int, default=20, help="cycles per approach and regime")
    parser.add_argument(
        "--regime",
        choices=("cold", "kept", "both"),
        default="both",
        help="cold: reap every idle environment before each cycle; kept: leave them",
    )
    parser.add_argument("--cpu-load", type=int, default=0, help="busy processes during the cycles")
    parser.add_argument(
        "--jitter-ms", type=float, default=0.0, help="random delay 0..J ms before each ping"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results") / "warmer.json")
    parser.add_argument(
        "--handlers", type=Path, default=handlers, help="folder of the handler apps to warm"
    )
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.cycles < 1 or args.cpu_load < 0 or not args.jitter_ms >= 0:
        parser.error(
            "--concurrency and --cycles must be at least 1, --cpu-load and --jitter-ms at least 0"
        )
    if args.handlers is None or not (args.handlers / "warm_app.py").is_file():
        parser.error(
            f"--handlers {args.handlers}: no warm_app.py there; give the folder of the handler "
            "apps (a checkout's tests/functional/handlers_warm)"
        )
    regimes = ["cold", "kept"] if args.regime == "both" else [args.regime]
    summaries = run(
        args.concurrency,
        args.cycles,
        regimes,
        args.cpu_load,
        args.jitter_ms,
        lambda line: print(line, file=sys.stderr, flush=True),
        args.handlers,
    )
    print(
        f"N = {args.concurrency}, {args.cycles} cycles, cpu load {args.cpu_load}, "
        f"jitter 0..{args.jitter_ms:g} ms"
    )
    print(table(summaries, args.concurrency))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(
        orjson.dumps(
            {
                "concurrency": args.concurrency,
                "cycles": args.cycles,
                "cpu_load": args.cpu_load,
                "jitter_ms": args.jitter_ms,
                "results": summaries,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
