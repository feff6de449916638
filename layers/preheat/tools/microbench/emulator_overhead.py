"""The local Lambda's own overhead: Init Duration of an empty handler, and the latency a warm
invoke adds over a plain HTTP echo server reached by the same boto3 client.

    .venv/bin/python scripts/bench_emulator.py [--cold-starts 20] [--invokes 1000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from preheat import aws
from preheat.tools.bench.stats import percentile
from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.tools.emulator._http import Handler, Server

EMPTY = """def handler(event, context):
    return None
"""
ECHO = """def handler(event, context):
    return event
"""
PAYLOAD = json.dumps({"inputs": [[0.5] * 32], "id": "bench"}).encode()


class _Echo(Handler):
    """The baseline: an HTTP server that answers the Invoke path with the request body."""

    def do_POST(self) -> None:
        body = self.read_body(6 * 1024 * 1024) or b""
        self.respond(
            200, body, {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
        )


def client(endpoint_url: str) -> Any:
    return aws.client(
        "lambda",
        endpoint_url=endpoint_url,
        region="us-east-1",
        credentials=("testing", "testing"),
        retries=aws.NO_RETRIES,
        read_timeout=60,
    )


def timed(call: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def cold_starts(emu: Emulator, n: int, progress: Callable[[str], None]) -> dict[str, Any]:
    lam = client(emu.endpoint_url)
    round_trips, bare = [], []
    for i in range(n):
        t0 = time.perf_counter()
        lam.invoke(FunctionName="empty", Payload=b"{}")["Payload"].read()
        round_trips.append((time.perf_counter() - t0) * 1000.0)
        for env in emu.stats("empty").live_environments:
            emu.kill_environment(env.env_id)
        # What no emulator can avoid, measured in turn with the cold starts so both see the
        # same load: the interpreter starting and importing the runtime client.
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import awslambdaric.__main__"], check=True)
        bare.append((time.perf_counter() - t0) * 1000.0)
        progress(f"cold start {i + 1}/{n}")
    inits = [r.init_duration_ms for r in emu.stats("empty").invocations if r.init_duration_ms]
    if len(inits) != n:
        raise SystemExit(f"expected {n} cold starts, the emulator recorded {len(inits)}")
    return {
        "cold_starts": n,
        "init_duration_ms_median": statistics.median(inits),
        "init_duration_ms_p90": percentile(inits, 90),
        "bare_python_and_awslambdaric_import_ms_median": statistics.median(bare),
        "cold_invoke_round_trip_ms_median": statistics.median(round_trips),
    }


def warm_overhead(
    emu: Emulator, n: int, progress: Callable[[str], None], name: str = "echo"
) -> dict[str, Any]:
    stub = Server(("127.0.0.1", 0), _Echo)
    threading.Thread(target=stub.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    try:
        via_emu, via_stub = (
            client(emu.endpoint_url),
            client(f"http://127.0.0.1:{stub.server_address[1]}"),
        )

        def emu_call() -> None:
            response = via_emu.invoke(FunctionName=name, Payload=PAYLOAD)
            if response["Payload"].read() != PAYLOAD:
                raise SystemExit("the echo handler answered something else")

        def stub_call() -> None:
            via_stub.invoke(FunctionName="echo", Payload=PAYLOAD)["Payload"].read()

        timed(emu_call, 20)  # the cold start and connection set-up are not the subject here
        timed(stub_call, 20)
        emu_ms: list[float] = []
        stub_ms: list[float] = []
        # Alternate single calls and pair them: each pair shares the machine's load at
        # that moment, so the paired difference is the emulator's own part.
        for i in range(n):
            emu_ms += timed(emu_call, 1)
            stub_ms += timed(stub_call, 1)
            if (i + 1) % 50 == 0:
                progress(f"{name}: warm invokes {i + 1}/{n}")
        added = [e - s for e, s in zip(emu_ms, stub_ms, strict=True)]
        direct_ms = timed(lambda: json.loads(PAYLOAD), n)
    finally:
        stub.shutdown()
        stub.server_close()
    warm = [r for r in emu.stats(name).invocations if not r.cold][-n:]
    return {
        "invokes": n,
        "emulator_round_trip_ms": {"p50": percentile(emu_ms, 50), "p99": percentile(emu_ms, 99)},
        "plain_http_round_trip_ms": {
            "p50": percentile(stub_ms, 50),
            "p99": percentile(stub_ms, 99),
        },
        "added_ms": {"p50": percentile(added, 50), "p99": percentile(added, 99)},
        "reported_duration_ms_p50": percentile([r.duration_ms for r in warm], 50),
        "direct_call_ms_p50": percentile(direct_ms, 50),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cold-starts", type=int, default=20)
    parser.add_argument("--invokes", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args(argv)

    def progress(message: str) -> None:
        print(f"\r{message}   ", end="", file=sys.stderr, flush=True)

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="preheat-bench-emulator-") as tmp:
        code = Path(tmp)
        (code / "empty.py").write_text(EMPTY)
        (code / "echo.py").write_text(ECHO)
        functions = [
            FunctionConfig("empty", code, "empty.handler", memory_mb=128),
            # Unfrozen, so that the frozen one beside it shows what freezing adds.
            FunctionConfig("echo", code, "echo.handler", memory_mb=128, freeze=False),
            FunctionConfig("echo-frozen", code, "echo.handler", memory_mb=128, freeze=True),
        ]
        with Emulator(functions, workdir=code / "work") as emu:
            result = {
                "init": cold_starts(emu, args.cold_starts, progress),
                "warm": warm_overhead(emu, args.invokes, progress),
                "warm_frozen_between_invokes": warm_overhead(
                    emu, args.invokes, progress, "echo-frozen"
                ),
                "machine": {"cpus": os.cpu_count(), "load_average_1m": round(load, 2)},
            }
    print(file=sys.stderr)
    init, warm = result["init"], result["warm"]
    frozen = result["warm_frozen_between_invokes"]
    print(
        f"empty handler Init Duration: median {init['init_duration_ms_median']:.1f} ms "
        f"(p90 {init['init_duration_ms_p90']:.1f} ms) over {init['cold_starts']} cold starts; "
        f"python starting and importing awslambdaric alone: "
        f"{init['bare_python_and_awslambdaric_import_ms_median']:.1f} ms median\n"
        f"warm echo invoke, boto3 round trip over {warm['invokes']} invokes:\n"
        f"  through the emulator  p50 {warm['emulator_round_trip_ms']['p50']:.2f} ms  "
        f"p99 {warm['emulator_round_trip_ms']['p99']:.2f} ms\n"
        f"  plain HTTP echo       p50 {warm['plain_http_round_trip_ms']['p50']:.2f} ms  "
        f"p99 {warm['plain_http_round_trip_ms']['p99']:.2f} ms\n"
        f"  added by the emulator (paired differences) p50 {warm['added_ms']['p50']:.2f} ms  "
        f"p99 {warm['added_ms']['p99']:.2f} ms "
        f"(REPORT Duration p50 {warm['reported_duration_ms_p50']:.2f} ms)\n"
        f"with the environment frozen between invokes: added p50 {frozen['added_ms']['p50']:.2f} ms"
        f"  p99 {frozen['added_ms']['p99']:.2f} ms\n"
        f"machine: {os.cpu_count()} CPUs, load average {load:.1f} when the run started"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
