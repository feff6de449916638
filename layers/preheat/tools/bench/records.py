"""What one benchmark run measured: cold starts, bursts and the network they ran on.

Raw figures only; summaries and ratios are derived from them in summary.py, so a results
file always carries the samples behind every number it shows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Parity:
    """How a strategy's outputs compare with the source model's on the same inputs."""

    max_abs_error: float
    max_rel_error: float
    # Fraction of samples whose arg-max agrees; None for outputs without a class axis.
    top1_agreement: float | None
    bit_identical: bool
    samples: int


@dataclass
class ProtocolRun:
    """The warm requests of one cold start sent in one protocol, with what the log said.

    `json` goes through the Invoke API (its warm_ms are the cold start's own); `oip-binary`
    and `tfserving` through the function's URL, after the JSON ones.
    """

    protocol: str
    # Each request's body as sent (headers apart), in bytes.
    request_bytes: list[int] = field(default_factory=list)
    warm_ms: list[float] = field(default_factory=list)
    # The model call's own time per request, from the function's log lines.
    predict_ms: list[float] = field(default_factory=list)
    parity: Parity | None = None
    error: str | None = None


@dataclass
class ColdStart:
    """One fresh execution environment: its INIT, first answer and the warm requests after."""

    strategy: str
    index: int
    environment: str | None = None
    # Lambda's REPORT "Init Duration": process start to the runtime's first /next. None
    # when INIT ran into the limit and was retried inside the invoke (init_retried).
    init_ms: float | None = None
    init_retried: bool = False
    # The inference function's INIT returned at its budget with the model still loading,
    # which the first invoke then waited for (None: the function does not say).
    init_handed_back: bool | None = None
    # The handler's own breakdown of INIT (download/fetch, import, load, warm-up, ...).
    phases_ms: dict[str, float] = field(default_factory=dict)
    # What a user waits: invoke sent on a new environment to response received, INIT included.
    first_response_ms: float | None = None
    # REPORT "Duration" of that first request: the handler's own time for it.
    first_duration_ms: float | None = None
    warm_ms: list[float] = field(default_factory=list)
    max_memory_mb: float | None = None
    bytes_by_tier: dict[str, int] = field(default_factory=dict)
    # CPU the fetch cost the function's process beside its main thread (preheat only).
    fetch_cpu_ms: float | None = None
    parity: Parity | None = None
    error: str | None = None
    # Warm requests per protocol (json first), for strategies whose function speaks them.
    protocols: list[ProtocolRun] = field(default_factory=list)
    # SnapStart: REPORT "Restore Duration" of the first request (the after-restore hooks;
    # no memory is restored by the emulator), the INIT the environment ran before its
    # snapshot, and how long publishing the version took (that INIT and the hooks).
    restore_ms: float | None = None
    snapshot_init_ms: float | None = None
    publish_ms: float | None = None


@dataclass
class BurstEnvironment:
    environment: str | None
    init_ms: float | None
    first_response_ms: float | None
    error: str | None = None


@dataclass
class Burst:
    """K environments cold-started at the same moment against the same S3."""

    strategy: str
    size: int
    # From the moment all K invokes were released to the last answer.
    all_answered_ms: float | None
    environments: list[BurstEnvironment] = field(default_factory=list)

    @property
    def distinct_environments(self) -> int:
        return len({e.environment for e in self.environments if e.environment})


@dataclass
class NetworkInfo:
    profile: str  # "loopback" | "lambda"
    shaped: bool
    rate_mbit: float | None = None
    measured_mbit: float | None = None
    # Why the profile asked for could not be set up, when it could not.
    note: str | None = None


@dataclass
class StrategyRun:
    """Everything measured for one strategy, or why it could not run."""

    name: str
    description: str
    available: bool = True
    reason: str | None = None
    artifact_bytes: int | None = None
    # The artifact's own parity record (from `preheat slim`), when it has one.
    artifact_parity: dict[str, Any] | None = None
    cold_starts: list[ColdStart] = field(default_factory=list)
    # Cold starts restore a published version's snapshot: reported in a section of their
    # own, never in the ratios against baseline.
    snapstart: bool = False


@dataclass
class BenchResult:
    created: str
    model: dict[str, Any]
    network: NetworkInfo
    settings: dict[str, Any]
    strategies: list[StrategyRun] = field(default_factory=list)
    bursts: list[Burst] = field(default_factory=list)

    def strategy(self, name: str) -> StrategyRun | None:
        return next((s for s in self.strategies if s.name == name), None)


def to_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)
