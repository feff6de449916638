"""`preheat profile`: one cold start in the local Lambda under -X importtime, and where INIT went."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preheat.exceptions import ConfigurationError, PreheatError
from preheat.tools.cli._common import Output, key_value, need, positive

if TYPE_CHECKING:
    from preheat.tools.profile.run import Progress

HELP = "profile one cold start of any Python handler: INIT phases and the imports that cost most"

_EPILOG = """\
example:
  preheat profile functions/inference:app.handler \\
      --env PREHEAT_MODEL_URI=./artifacts/dense --top 10 --out profile/

The handler directory runs as Lambda would run it, in a fresh `python -m awslambdaric`
process of the local Lambda, with PYTHONPROFILEIMPORTTIME=1. The function needs nothing
from preheat. Written to --out: profile.json (phases, top lists, the whole import tree)
and profile.png (an icicle chart: root on top, one row per import depth, width is time).

The top list ranks imports by cumulative time. An import inside one already listed is
listed too only if it takes at least 5% of all import time and less than 90% of the listed
one (otherwise it only restates it); the chain after each name says who imported it.
-X importtime adds a little time of its own to every import; compare runs with each
other, not with a run without it."""

DEFAULT_TOP = 15


class _ProfileFailed(PreheatError):
    """INIT failed or timed out: the report is printed, then this one line."""


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument(
        "target",
        metavar="DIR:module.handler",
        help="the function's code directory and handler, e.g. functions/inference:app.handler",
    )
    parser.add_argument(
        "--env",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the function (repeatable)",
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=1769,
        metavar="MB",
        help="memory size, 128-10240 (default %(default)s: one full vCPU on Lambda)",
    )
    parser.add_argument(
        "--layer",
        dest="layers",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a directory whose content appears under the environment's /opt (repeatable)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter that runs the function; it needs awslambdaric (default: this one)",
    )
    parser.add_argument(
        "--event",
        default="{}",
        metavar="JSON|@FILE",
        help="the first invoke's event, inline or from a file (default %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("preheat-profile"),
        metavar="DIR",
        help="where profile.json and profile.png go (default %(default)s)",
    )
    parser.add_argument(
        "--top",
        type=positive(int),
        default=DEFAULT_TOP,
        metavar="N",
        help="how many imports each ranking lists (default %(default)s)",
    )
    parser.add_argument(
        "--init-timeout",
        type=positive(float),
        default=10.0,
        metavar="S",
        help="INIT limit (default %(default)s, as Lambda); the imports up to it are still shown",
    )
    parser.add_argument(
        "--timeout",
        type=positive(float),
        default=30.0,
        metavar="S",
        help="the first invoke's timeout (default %(default)s)",
    )


def read_event(text: str) -> bytes:
    """The event as JSON bytes, from `JSON` or `@file`; a ConfigurationError says what is wrong."""
    import orjson

    data = text.encode()
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                "--event", text, f"cannot read {path} ({exc.strerror}); name an existing file"
            ) from None
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError("--event", text, f"it is not JSON ({exc})") from None
    return data


def run(args: argparse.Namespace, out: Output) -> int:
    # matplotlib draws profile.png; awslambdaric runs the function, checked here when it is
    # this interpreter (check_python checks any other one).
    need("profile", "matplotlib", *(["awslambdaric"] if args.python == sys.executable else []))
    import orjson

    from preheat.tools.emulator import FunctionConfig
    from preheat.tools.profile import chart, report
    from preheat.tools.profile.run import check_python, cold_start, parse_target

    code_dir, handler = parse_target(args.target)
    event = read_event(args.event)
    python = check_python(args.python)
    fn = FunctionConfig(
        name="profiled",
        code_dir=code_dir,
        handler=handler,
        env=dict(args.env),
        memory_mb=args.memory_mb,
        timeout_s=args.timeout,
        init_timeout_s=args.init_timeout,
        layers=tuple(args.layers),
        python=python,
    )

    def progress(p: Progress) -> None:
        last = f" (last: {p.last_module})" if p.last_module else ""
        out.progress(f"cold start: {p.elapsed_s:.1f} s, {p.modules} modules imported{last}")

    out.progress(f"cold start of {handler} in {code_dir} with -X importtime …", force=True)
    cold = cold_start(fn, event, on_progress=progress)
    out.done_progress()
    doc = report.build(cold, handler=handler, code_dir=str(code_dir), top=args.top)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "profile.json"
    json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    png_path = chart.draw(doc, args.out / "profile.png")
    summary: dict[str, Any] = {k: v for k, v in doc.items() if k != "tree"}
    summary["files"] = {"json": str(json_path), "png": str(png_path)}
    out.result(
        summary,
        report.render(doc, args.top) + f"\n\nWrote {json_path} and {png_path}",
    )
    if cold.init_failed:
        raise _ProfileFailed(_init_failure(cold.outcome, handler, cold, args.init_timeout))
    if cold.outcome != "success":
        what = f"{cold.error_type}: {cold.error_message}" if cold.error_message else cold.error_type
        out.warn(
            f"the first invoke of {handler} failed ({what}); INIT is profiled all the same. "
            "Pass --event with an event the handler accepts to profile the invoke too"
        )
    return 0


def _init_failure(kind: str, handler: str, cold: Any, limit: float) -> str:
    if kind == "init_timeout":
        return (
            f"INIT of {handler} did not finish within --init-timeout {limit:g} s; the imports "
            "above ran before it was stopped. Pass a larger --init-timeout to profile all of it"
        )
    message = (cold.error_message or "").strip().splitlines()
    detail = f": {message[0]}" if message else ""
    return (
        f"INIT of {handler} failed with {cold.error_type}{detail}; the imports above ran before "
        "it. Fix that error (run the module with python to see its traceback) and profile again"
    )
