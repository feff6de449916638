"""`preheat emulate`: serve a local Lambda (Invoke API + Runtime API) until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from preheat.exceptions import ConfigurationError, PreheatError
from preheat.tools.cli._common import Output, key_value, need, positive
from preheat.tools.emulator.config import DEFAULT_MAX_CONCURRENCY
from preheat.tools.emulator.resources import DEFAULT_INIT_CPU, INIT_CPU_RULES, parse_cpus

if TYPE_CHECKING:
    from preheat.tools.emulator import Emulator, FunctionConfig, InvocationRecord
    from preheat.tools.emulator.function_url import FunctionUrl

HELP = "serve a local Lambda on AWS's runtime client until Ctrl-C (like `sam local start-lambda`)"

_EPILOG = """\
examples:
  preheat emulate --function infer=functions/inference:app.handler \\
      --env PREHEAT_MODEL_URI=s3://models/models/resnet/1 --memory 3008 --timeout 60
  AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:3001 aws lambda invoke --function-name infer out.json
  preheat emulate --function inference=functions/inference:app.handler --url inference=8081
  curl http://127.0.0.1:8081/v2/health/ready     (the function's URL; see docs/protocols.md)
  make py312 && preheat emulate --snapstart --python .venv312/bin/python \
      --function snap=tests/functional/handlers:snap_hooks.handler

Each execution environment is a fresh `python -m awslambdaric` process with its own temp dir
(TMPDIR, PREHEAT_CACHE_DIR inside it) and the layers merged under PREHEAT_OPT_DIR. As root,
it runs in a cgroup of its own with Lambda's CPU share for --memory (1 vCPU at 1769 MB) and
--memory as a hard limit: going over it kills the environment (Runtime.OutOfMemory).
Without root it runs unconfined and says so. See docs/local-lambda-resources.md.

--snapstart (every function) or --snapstart NAME initialises $LATEST's environments ahead:
INIT and the before-snapshot hooks run at start, each environment then waits, stopped, on
/runtime/restore/next, and a cold start restores one (after-restore hooks, then the invoke;
REPORT shows Restore Duration). No memory is snapshotted, so the cost of restoring a real
snapshot is not modelled: only the hooks and the invoke are measured. SnapStart needs
Python 3.12+: --python names the interpreter (make py312 builds .venv312)."""

# `--snapstart` with no NAME: every function.
_ALL = "*"


def _cpus(text: str) -> tuple[int, ...]:
    try:
        return parse_cpus(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; use a core list such as 0 or 0-2,5") from None


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument(
        "--function",
        dest="functions",
        action="append",
        required=True,
        metavar="NAME=DIR:module.handler",
        help="a function to serve: its name, code directory and handler (repeatable)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=3001,
        help="Invoke API port; 0 picks a free one (default %(default)s)",
    )
    parser.add_argument(
        "--env",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for every function (repeatable)",
    )
    parser.add_argument(
        "--memory",
        type=int,
        default=512,
        metavar="MB",
        help="memory size, 128-10240: the memory limit and, in proportion, the CPU share "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--init-cpu",
        choices=INIT_CPU_RULES,
        default=DEFAULT_INIT_CPU,
        help="CPU during INIT: the memory's share, as AWS documents, or 'burst' (2 vCPUs up "
        "to 3008 MB, as third parties measured) (default %(default)s)",
    )
    parser.add_argument(
        "--cpus",
        type=_cpus,
        default=None,
        metavar="LIST",
        help="run environments only on these cores, e.g. 1 or 0-2,5 (default: any), to keep "
        "them off the cores of a local S3 server",
    )
    parser.add_argument(
        "--no-confine",
        action="store_true",
        help="do not put environments in cgroups (no CPU quota, no memory limit)",
    )
    parser.add_argument(
        "--timeout",
        type=positive(float),
        default=30.0,
        metavar="S",
        help="function timeout (default %(default)s)",
    )
    parser.add_argument(
        "--init-timeout",
        type=positive(float),
        default=10.0,
        metavar="S",
        help="INIT limit before one retry inside the invoke (default %(default)s, as Lambda)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive(int),
        default=DEFAULT_MAX_CONCURRENCY,
        metavar="N",
        help="most environments busy at once across all functions; more invokes get 429 "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=positive(float),
        default=300.0,
        metavar="S",
        help="shut an environment down after this long unused (default %(default)s)",
    )
    parser.add_argument(
        "--layer",
        dest="layers",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a directory whose content appears under the environment's /opt (repeatable, in order)",
    )
    parser.add_argument(
        "--freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop each environment between invocations, as Lambda always does: background "
        "threads and child processes make no progress until the next event; --no-freeze "
        "lets them run on (default: freeze)",
    )
    parser.add_argument(
        "--python",
        default=None,
        metavar="PATH",
        help="the interpreter every environment runs awslambdaric with (default: this one); "
        "SnapStart needs 3.12+",
    )
    parser.add_argument(
        "--snapstart",
        action="append",
        nargs="?",
        const=_ALL,
        default=[],
        metavar="NAME",
        help="SnapStart for function NAME's $LATEST, or for every function without NAME: "
        "initialised and snapshotted (before-snapshot hooks) at start, each cold start a "
        "restore (after-restore hooks) (repeatable)",
    )
    parser.add_argument(
        "--url",
        dest="urls",
        action="append",
        type=key_value,
        default=[],
        metavar="NAME=PORT",
        help="serve function NAME's Function URL on PORT (auth NONE; deployed URLs use "
        "AWS_IAM) (repeatable)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="do not echo the functions' own log output"
    )


def parse_function(spec: str, args: argparse.Namespace) -> FunctionConfig:
    import sys

    from preheat.tools.emulator import FunctionConfig

    name, sep, rest = spec.partition("=")
    directory, colon, handler = rest.rpartition(":")
    if not sep or not colon or not name or not directory:
        raise ConfigurationError(
            "--function",
            spec,
            "use NAME=DIR:module.handler, e.g. infer=functions/inference:app.handler",
        )
    return FunctionConfig(
        name=name,
        code_dir=Path(directory),
        handler=handler,
        env=dict(args.env),
        memory_mb=args.memory,
        timeout_s=args.timeout,
        init_timeout_s=args.init_timeout,
        idle_timeout_s=args.idle_timeout,
        layers=tuple(args.layers),
        freeze=args.freeze,
        init_cpu=args.init_cpu,
        python=args.python or sys.executable,
        snapstart=_ALL in args.snapstart or name in args.snapstart,
    )


def describe(rec: InvocationRecord) -> str:
    kind = "cold" if rec.cold else "warm"
    init = f" init {rec.init_duration_ms:.1f} ms" if rec.init_duration_ms is not None else ""
    if rec.restore_duration_ms is not None:
        init = f" restore {rec.restore_duration_ms:.1f} ms"
    error = f" {rec.outcome}: {rec.error_type}" if rec.outcome != "success" else ""
    name = rec.function if rec.version == "$LATEST" else f"{rec.function}:{rec.version}"
    return (
        f"{rec.request_id} {name} {kind}{init} duration {rec.duration_ms:.1f} ms "
        f"billed {rec.billed_duration_ms} ms memory {rec.max_memory_used_mb}/{rec.memory_size_mb} MB"
        f" env {rec.env_id[:8]}{error}"
    )


class _Warnings(logging.Handler):
    def __init__(self, out: Output) -> None:
        super().__init__(logging.WARNING)
        self._out = out

    def emit(self, record: logging.LogRecord) -> None:
        self._out.warn(record.getMessage())


class _LineEcho:
    """Echo environments' output line by line, each prefixed with its environment."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._partial: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __call__(self, env_id: str, data: bytes) -> None:
        with self._lock:
            *lines, rest = (self._partial.pop(env_id, b"") + data).split(b"\n")
            if rest:
                self._partial[env_id] = rest[-65536:]
            for line in lines:
                text = line.decode("utf-8", "replace").rstrip("\r")
                print(f"[{env_id[:8]}] {text}", file=self._out.stderr, flush=True)


def _function_url(emu: Emulator, name: str, port: str, host: str) -> FunctionUrl:
    from preheat.tools.emulator.function_url import FunctionUrl

    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigurationError("--url", f"{name}={port}", "use NAME=PORT, PORT 0-65535")
    return FunctionUrl(emu, name, host=host, port=int(port)).start()


def _prepare_snapshots(emu: Emulator, name: str, out: Output) -> None:
    """SnapStart mode: $LATEST's snapshot before anything is served, as a publish takes it."""
    from preheat.tools.emulator.environment import SnapshotError
    from preheat.tools.emulator.snapshots import SnapshotFailed

    if not out.json_mode:
        out.info(f"  {name}: initialising $LATEST for SnapStart (before-snapshot hooks)")
    try:
        emu.prepare_snapshots(name)
    except (SnapshotFailed, SnapshotError) as exc:
        raise PreheatError(
            f"function {name}: no SnapStart snapshot of $LATEST: {exc.error_type}: "
            f"{exc.message} (its log is above; fix the handler or drop --snapstart)"
        ) from None


def run(args: argparse.Namespace, out: Output) -> int:
    need("emulate", "awslambdaric")  # every environment is `python -m awslambdaric`
    import orjson

    from preheat.tools.emulator import Emulator

    functions = [parse_function(spec, args) for spec in args.functions]
    unknown = sorted(set(args.snapstart) - {_ALL} - {f.name for f in functions})
    if unknown:
        raise ConfigurationError(
            "--snapstart", ", ".join(unknown), "name a function given with --function"
        )

    def on_invocation(rec: InvocationRecord) -> None:
        if out.json_mode:
            out.stdout.write(orjson.dumps({"invocation": rec}).decode() + "\n")
            out.stdout.flush()
        else:
            out.info(describe(rec))

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    stop = threading.Event()
    # What the emulator cannot model (no root, too few cores) becomes one warning line each.
    notices = _Warnings(out)
    emulator_log = logging.getLogger("preheat.tools.emulator")
    emulator_log.addHandler(notices)
    try:
        with (
            Emulator(
                functions,
                host=args.host,
                port=args.port,
                max_concurrency=args.concurrency,
                on_invocation=on_invocation,
                log_sink=None if args.quiet else _LineEcho(out),
                cpus=args.cpus,
                confine=not args.no_confine,
            ) as emu,
            contextlib.ExitStack() as urls,
        ):
            for fn in functions:
                if fn.snapstart:
                    _prepare_snapshots(emu, fn.name, out)
            function_urls = {
                name: urls.enter_context(_function_url(emu, name, port, args.host))
                for name, port in args.urls
            }
            url = emu.endpoint_url
            models = {f.name: emu.resource_model(f.name) for f in functions}
            if out.json_mode:
                out.stdout.write(
                    orjson.dumps(
                        {
                            "endpoint_url": url,
                            "functions": [f.name for f in functions],
                            "resources": models,
                            "function_urls": {n: u.url for n, u in function_urls.items()},
                        }
                    ).decode()
                    + "\n"
                )
                out.stdout.flush()
            else:
                out.info(f"Serving the Lambda Invoke API at {url}")
                out.info(f"  functions: {', '.join(f.name for f in functions)}")
                for name, model in models.items():
                    out.info(f"  {name}: {model.describe()}")
                for name, function_url in function_urls.items():
                    out.info(f"  {name}: Function URL {function_url.url} (auth NONE)")
                out.info(f"  export AWS_ENDPOINT_URL_LAMBDA={url}   (Ctrl-C to stop)")
            try:
                while not stop.wait(3600):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        emulator_log.removeHandler(notices)
        signal.signal(signal.SIGTERM, previous)
    if not out.json_mode:
        out.info("stopped: every environment shut down")
    return 0
