"""The warmer engine: send warm pings until N distinct environments have answered.

Lambda routes an invocation to an idle environment when it has one and starts a new one
(a cold start) only when every environment is busy. So N pings make N environments warm
only if all N are in flight together: a ping that arrives after another environment has
answered lands on that one again. A ping therefore *holds* its environment busy for a
while, and the engine checks the answers, because a hold shorter than the spread between the
first and the last ping's arrival (thread start-up, request signing, a loaded host) gives
fewer environments than asked, silently, which is what warmers that only sleep get.

Rounds. Round 1 sends N pings at once, each holding `hold_ms`. If D < N distinct ids came
back, the next round looks for the missing N - D, but it cannot send only N - D pings:
the D known environments are idle again, so those pings would land on them and find
nothing new. Each further round therefore sends D pings to keep the known environments
busy plus N - D to go beyond them, N in flight together, all holding for twice as long as
the round before (and at least a few times the spread this round was measured to have).
Once the hold covers the spread, every ping of a round is in flight while the others are,
the known environments absorb D of them and the rest must start new ones: the count
converges in a round or two and then stays. Every answer says whether its call was the
environment's first, so the cold starts the warmer caused are counted, not guessed.
Holds start short and grow only when a round fell short: while an environment holds a
ping, a real request cannot use it and would start a new environment instead.

Bounds. At most `max_rounds` rounds, never past `budget_s` (a round is not started when
its hold cannot fit and pending answers are abandoned at the deadline), no retries within
a round. A round that gains nothing while pings were throttled stops the target at once:
the concurrency limit, not the hold, is what keeps it short. A target that does not exist
or whose handler does not answer warm pings stops after one round. The client passed in
should not retry on its own (see `lambda_client`), or throttles would be hidden and waited on.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson

from preheat import aws
from preheat import constants as c
from preheat.exceptions import ConfigurationError
from preheat.warm.ping import WARM

# Kinds of failed pings, as the report counts them.
THROTTLED = "throttled"
NOT_FOUND = "not_found"
FUNCTION_ERROR = "function_error"
NOT_WARM_AWARE = "not_warm_aware"
TIMEOUT = "timeout"
OTHER = "other"

DEFAULT_HOLD_MS = 250.0
DEFAULT_MAX_HOLD_MS = float(c.DEFAULT_WARM_HOLD_CAP_MS)
DEFAULT_MAX_ROUNDS = 5
DEFAULT_BUDGET_S = 60.0
MAX_CONCURRENCY = 1000
# The next hold covers this many times the spread of the round just measured.
_SPREAD_FACTOR = 3.0
# Time a round needs beyond its hold, at the least: a request's round trip.
_ROUND_OVERHEAD_S = 0.2


class LambdaClient(Protocol):
    """The part of boto3's `lambda` client the engine uses."""

    def invoke(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Target:
    function: str
    qualifier: str | None = None
    concurrency: int = 1

    def __post_init__(self) -> None:
        if not self.function or not isinstance(self.function, str):
            raise ConfigurationError("function", self.function, "name a Lambda function")
        if self.qualifier is not None and not self.qualifier:
            raise ConfigurationError("qualifier", self.qualifier, "name an alias or version")
        if (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or not 1 <= self.concurrency <= MAX_CONCURRENCY
        ):
            raise ConfigurationError(
                f"concurrency of {self.label}",
                self.concurrency,
                f"use a whole number from 1 to {MAX_CONCURRENCY}",
            )

    @property
    def label(self) -> str:
        return f"{self.function}:{self.qualifier}" if self.qualifier else self.function


@dataclass(frozen=True)
class PingResult:
    """One ping's outcome: the environment that answered, or why none did."""

    environment_id: str | None = None
    cold: bool = False
    held_ms: float = 0.0
    # The longest hold the environment grants (its PREHEAT_WARM_HOLD_CAP_MS), when it said.
    hold_cap_ms: float | None = None
    latency_s: float = 0.0
    sent_at: float = 0.0
    error: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class RoundReport:
    round: int
    sent: int
    hold_ms: float
    answered: int
    distinct: int
    new: int
    cold_starts: int
    errors: dict[str, int]
    spread_ms: float
    duration_s: float


@dataclass
class TargetReport:
    """What one warm cycle of one target achieved."""

    function: str
    qualifier: str | None
    asked: int
    warm: int = 0
    environment_ids: list[str] = field(default_factory=list)
    cold_starts: int = 0
    rounds: int = 0
    duration_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    # Why the cycle ended short of `asked`; None when it did not.
    reason: str | None = None
    # Against the environments seen by the previous cycle, when one was given.
    new_environments: list[str] = field(default_factory=list)
    lost_environments: list[str] = field(default_factory=list)
    round_details: list[RoundReport] = field(default_factory=list)

    @property
    def shortfall(self) -> int:
        return max(0, self.asked - self.warm)

    @property
    def ok(self) -> bool:
        return self.shortfall == 0

    @property
    def label(self) -> str:
        return f"{self.function}:{self.qualifier}" if self.qualifier else self.function

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shortfall"] = self.shortfall
        d["ok"] = self.ok
        return d


def _error_code(exc: BaseException) -> tuple[str | None, int | None]:
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None, None
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status


def _classify(exc: BaseException) -> str:
    code, status = _error_code(exc)
    if status == 429 or code in {"TooManyRequestsException", "ThrottlingException"}:
        return THROTTLED
    if status == 404 or code == "ResourceNotFoundException":
        return NOT_FOUND
    if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower():
        return TIMEOUT
    return OTHER


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def ping_once(
    client: LambdaClient,
    target: Target,
    hold_ms: float,
    rnd: int,
    clock: Callable[[], float] = time.monotonic,
) -> PingResult:
    """Send one warm ping (RequestResponse) and read who answered; never raises."""
    payload = orjson.dumps({c.WARM_EVENT_KEY: {WARM: {"hold_ms": hold_ms, "round": rnd}}})
    kwargs: dict[str, Any] = {
        "FunctionName": target.function,
        "InvocationType": "RequestResponse",
        "Payload": payload,
    }
    if target.qualifier:
        kwargs["Qualifier"] = target.qualifier
    sent = clock()
    try:
        response = client.invoke(**kwargs)
        body = response["Payload"].read()
    except Exception as exc:  # a ping's failure is a fact to report, never a crash
        return PingResult(
            sent_at=sent, latency_s=clock() - sent, error=_classify(exc), detail=str(exc)
        )
    latency = clock() - sent
    if response.get("FunctionError"):
        return PingResult(
            sent_at=sent,
            latency_s=latency,
            error=FUNCTION_ERROR,
            detail=body[:300].decode("utf-8", "replace"),
        )
    try:
        answer = orjson.loads(body)[c.WARM_EVENT_KEY][WARM]
        env_id = answer["environment_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return PingResult(
            sent_at=sent,
            latency_s=latency,
            error=NOT_WARM_AWARE,
            detail=body[:200].decode("utf-8", "replace"),
        )
    if not isinstance(env_id, str) or not env_id:
        return PingResult(sent_at=sent, latency_s=latency, error=NOT_WARM_AWARE)
    if answer.get("error"):
        # A ping this engine malformed; the environment still answered and counts as warm.
        return PingResult(
            environment_id=env_id,
            cold=bool(answer.get("cold")),
            sent_at=sent,
            latency_s=latency,
            error=FUNCTION_ERROR,
            detail=str(answer["error"]),
        )
    return PingResult(
        environment_id=env_id,
        cold=bool(answer.get("cold")),
        held_ms=float(answer.get("held_ms") or 0.0),
        hold_cap_ms=_number(answer.get("hold_cap_ms")),
        sent_at=sent,
        latency_s=latency,
    )


def _stop_reason(
    target: Target, round_: RoundReport, results: Sequence[PingResult], warm: int
) -> str | None:
    """Why no further round can help, or None when one may."""
    errors = round_.errors
    if errors.get(NOT_FOUND):
        detail = next((r.detail for r in results if r.error == NOT_FOUND), "")
        detail = detail or "ResourceNotFoundException"
        return f"function {target.label} not found ({detail}); check the name and qualifier"
    if errors.get(NOT_WARM_AWARE) and round_.answered == 0:
        return (
            f"{target.label} does not answer warm pings; decorate its handler with "
            "preheat.warm.warm_handler"
        )
    throttled = errors.get(THROTTLED, 0)
    # Every ping either throttled or found an environment of its own: the limit, not the
    # hold, is what keeps the count short, and another round would only be throttled again.
    if throttled and (round_.new == 0 or round_.distinct + throttled >= round_.sent):
        return (
            f"throttled at {warm} environments (429): the function's concurrency limit is "
            f"below {target.concurrency}; raise its reserved concurrency or lower N"
        )
    if round_.answered == 0 and round_.sent:
        kind, _ = Counter(r.error for r in results if r.error).most_common(1)[0]
        detail = next((r.detail for r in results if r.error == kind), "")
        return f"no ping was answered ({kind}: {detail[:200]})"
    return None


def warm_target(
    lambda_client: LambdaClient,
    function: str,
    qualifier: str | None,
    concurrency: int,
    *,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    budget_s: float = DEFAULT_BUDGET_S,
    hold_ms: float = DEFAULT_HOLD_MS,
    max_hold_ms: float = DEFAULT_MAX_HOLD_MS,
    previous: Iterable[str] | None = None,
    on_round: Callable[[Target, RoundReport, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TargetReport:
    """Warm `concurrency` environments of one function and report who answered.

    `previous` are the environment ids the last cycle saw: the report then names the new
    and the lost ones. `on_round(target, round, distinct_so_far)` is told after each round.
    """
    target = Target(function, qualifier, concurrency)
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ConfigurationError("max_rounds", max_rounds, "use a whole number >= 1")
    if not budget_s > 0:
        raise ConfigurationError("budget_s", budget_s, "use a positive number of seconds")
    if not hold_ms >= 0 or not max_hold_ms >= 0:
        raise ConfigurationError("hold_ms", hold_ms, "use milliseconds >= 0")
    start = clock()
    deadline = start + budget_s
    report = TargetReport(function, qualifier, concurrency)
    seen: dict[str, None] = {}  # insertion-ordered set
    errors: Counter[str] = Counter()
    hold = min(hold_ms, max_hold_ms)
    # Not a `with` block: its exit would wait for abandoned pings, past the budget.
    pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="preheat-warm")
    try:
        for rnd in range(1, max_rounds + 1):
            if rnd > 1 and deadline - clock() < hold / 1000 + _ROUND_OVERHEAD_S:
                report.reason = f"time budget of {budget_s:g} s spent after {rnd - 1} rounds"
                break
            round_start = clock()
            futures = [
                pool.submit(ping_once, lambda_client, target, hold, rnd, clock)
                for _ in range(concurrency)
            ]
            done, pending = cf.wait(futures, timeout=max(0.0, deadline - clock()))
            for f in pending:
                f.cancel()
            results = [f.result() for f in done] + [
                PingResult(error=TIMEOUT, detail="no answer within the time budget")
                for _ in pending
            ]
            round_report = _account(rnd, hold, results, seen, round_start, clock)
            errors.update(round_report.errors)
            report.cold_starts += round_report.cold_starts
            report.rounds = rnd
            report.round_details.append(round_report)
            if on_round is not None:
                on_round(target, round_report, len(seen))
            if len(seen) >= concurrency:
                break
            reason = _stop_reason(target, round_report, results, len(seen))
            if reason is None and pending:
                reason = f"time budget of {budget_s:g} s spent in round {rnd}"
            if reason is not None:
                report.reason = reason
                break
            # Asking for more than the function grants would only mislead the report.
            caps = [r.hold_cap_ms for r in results if r.hold_cap_ms is not None]
            if caps:
                max_hold_ms = min(max_hold_ms, min(caps))
            hold = min(max_hold_ms, max(hold * 2, _SPREAD_FACTOR * round_report.spread_ms, 50.0))
        else:
            last_hold = report.round_details[-1].hold_ms
            report.reason = (
                f"{len(seen)} of {concurrency} environments answered after {max_rounds} rounds "
                f"(last hold {last_hold:.0f} ms); raise the rounds, or the function's hold "
                "cap (PREHEAT_WARM_HOLD_CAP_MS) if the last hold reached it"
            )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    report.warm = len(seen)
    report.environment_ids = list(seen)
    report.errors = dict(errors)
    report.duration_s = round(clock() - start, 3)
    if report.ok:
        report.reason = None
    if previous is not None:
        before = set(previous)
        report.new_environments = [e for e in seen if e not in before]
        report.lost_environments = sorted(before - set(seen))
    return report


def _account(
    rnd: int,
    hold: float,
    results: Sequence[PingResult],
    seen: dict[str, None],
    round_start: float,
    clock: Callable[[], float],
) -> RoundReport:
    before = len(seen)
    ids = [r.environment_id for r in results if r.environment_id]
    for env_id in ids:
        seen.setdefault(env_id)
    sent_at = [r.sent_at for r in results if r.sent_at]
    spread = (max(sent_at) - min(sent_at)) * 1000 if sent_at else 0.0
    return RoundReport(
        round=rnd,
        sent=len(results),
        hold_ms=hold,
        answered=len(ids),
        distinct=len(set(ids)),
        new=len(seen) - before,
        cold_starts=sum(1 for r in results if r.cold),
        errors=dict(Counter(r.error for r in results if r.error)),
        spread_ms=round(spread, 1),
        duration_s=round(clock() - round_start, 3),
    )


def warm_all(
    lambda_client: LambdaClient,
    targets: Iterable[Target],
    *,
    previous: Mapping[str, Iterable[str]] | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
    **options: Any,
) -> list[TargetReport]:
    """Warm every target in turn within one shared time budget; a failure stops none.

    Targets run one after the other so each round's pings compete with nobody else's.
    `previous` maps a target's label to the environment ids its last cycle saw.
    """
    deadline = clock() + budget_s
    reports: list[TargetReport] = []
    for target in targets:
        left = deadline - clock()
        if left <= _ROUND_OVERHEAD_S:
            reports.append(
                TargetReport(
                    target.function,
                    target.qualifier,
                    target.concurrency,
                    reason=f"not warmed: the time budget of {budget_s:g} s went to earlier targets",
                )
            )
            continue
        reports.append(
            warm_target(
                lambda_client,
                target.function,
                target.qualifier,
                target.concurrency,
                budget_s=left,
                previous=(previous or {}).get(target.label),
                clock=clock,
                **options,
            )
        )
    return reports


def lambda_client(max_concurrency: int, read_timeout_s: float = 30.0) -> Any:
    """A boto3 `lambda` client fit for the engine: no retries, a connection per ping.

    boto3 retries throttles on its own and pools 10 connections; both would hide what the
    warmer must see (429s) or serialise pings that must overlap. AWS_ENDPOINT_URL_LAMBDA is
    honoured by boto3 itself.
    """
    from botocore.exceptions import NoRegionError

    try:
        return aws.client(
            "lambda",
            retries=aws.NO_RETRIES,
            pool=max(10, max_concurrency),
            connect_timeout=5,
            read_timeout=read_timeout_s,
            tcp_keepalive=True,
        )
    except NoRegionError:
        raise ConfigurationError(
            "AWS_REGION", None, "set AWS_REGION or AWS_DEFAULT_REGION to the function's region"
        ) from None
