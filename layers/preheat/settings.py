"""The typed, frozen settings object: argument > PREHEAT_* environment variable > default.

This is the single source of defaults; nothing else in preheat repeats them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from preheat import constants as c
from preheat.exceptions import ConfigurationError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, raw: str) -> bool:
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ConfigurationError(name, raw, "use true/false, 1/0, yes/no or on/off")


def _int(name: str, raw: str, minimum: int, maximum: int | None = None) -> int:
    try:
        v = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ConfigurationError(name, raw, "use a whole number") from None
    if v < minimum or (maximum is not None and v > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ConfigurationError(name, raw, f"use a number at least {minimum}{upper}")
    return v


def _float(name: str, raw: str, minimum: float) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise ConfigurationError(name, raw, "use a number") from None
    if not v >= minimum:  # also refuses NaN
        raise ConfigurationError(name, raw, f"use a number at least {minimum}")
    return v


def _float_within(name: str, raw: str, minimum: float, maximum: float, low: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise ConfigurationError(name, raw, "use a number of seconds") from None
    if not minimum <= v <= maximum:  # also refuses NaN and infinities
        raise ConfigurationError(name, raw, f"use seconds from {low} to {maximum:g}")
    return v


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    v = raw.strip().lower()
    if v not in choices:
        raise ConfigurationError(name, raw, f"use one of {', '.join(choices)}")
    return v


@dataclass(frozen=True)
class Settings:
    """Everything that tunes how preheat finds, fetches and loads a model."""

    model_uri: str | None = None
    cache_dir: Path = Path(c.DEFAULT_CACHE_DIR)
    # None: 80% of the free space of cache_dir's file system, read when the cache opens.
    cache_max_bytes: int | None = None
    local_paths: tuple[Path, ...] = tuple(Path(p) for p in c.DEFAULT_LOCAL_PATHS)
    fetch_concurrency: int = c.DEFAULT_FETCH_CONCURRENCY
    fetch_retries: int = c.DEFAULT_FETCH_RETRIES
    fetch_timeout_s: float = c.DEFAULT_FETCH_TIMEOUT_S
    allow_stale: bool = False
    warmup: bool = True
    prefetch: bool = True
    warm_hold_cap_ms: int = c.DEFAULT_WARM_HOLD_CAP_MS
    fetch_engine: str = c.DEFAULT_FETCH_ENGINE
    # "lean" imports only what serving a SavedModel needs, falling back to "full" on failure.
    tf_import: Literal["lean", "full"] = c.DEFAULT_TF_IMPORT
    # Seconds from the start of INIT after which INIT returns while the load goes on in the
    # background (0: off, INIT waits for the load); see preheat.serving.budget.
    init_budget_s: float = c.DEFAULT_INIT_BUDGET_S
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fetch_concurrency < 1 or self.fetch_concurrency > 256:
            raise ConfigurationError("fetch_concurrency", self.fetch_concurrency, "use 1 to 256")
        if self.fetch_retries < 0 or self.fetch_retries > 20:
            raise ConfigurationError("fetch_retries", self.fetch_retries, "use 0 to 20")
        if not self.fetch_timeout_s > 0:
            raise ConfigurationError(
                "fetch_timeout_s", self.fetch_timeout_s, "use a positive number of seconds"
            )
        if self.cache_max_bytes is not None and self.cache_max_bytes < 0:
            raise ConfigurationError(
                "cache_max_bytes", self.cache_max_bytes, "use a byte count >= 0"
            )
        if self.fetch_engine not in c.FETCH_ENGINES:
            raise ConfigurationError(
                "fetch_engine", self.fetch_engine, f"use one of {', '.join(c.FETCH_ENGINES)}"
            )
        if self.warm_hold_cap_ms < 0:
            raise ConfigurationError(
                "warm_hold_cap_ms", self.warm_hold_cap_ms, "use milliseconds >= 0"
            )
        budget = self.init_budget_s
        if (
            isinstance(budget, bool)
            or not isinstance(budget, int | float)
            or not 0 <= budget <= c.MAX_INIT_BUDGET_S  # also refuses NaN
        ):
            raise ConfigurationError(
                "init_budget_s",
                budget,
                f"use seconds from 0 (off) to {c.MAX_INIT_BUDGET_S:g}; below Lambda's "
                f"{c.LAMBDA_INIT_LIMIT_S:g} s INIT limit for it to take effect on demand",
            )
        if self.tf_import not in c.TF_IMPORT_CHOICES:
            raise ConfigurationError(
                "tf_import", self.tf_import, f"use one of {', '.join(c.TF_IMPORT_CHOICES)}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from explicit overrides, then the environment, then defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if (v := env.get(c.ENV_MODEL_URI)) is not None and v.strip():
            values["model_uri"] = v.strip()
        if (v := env.get(c.ENV_CACHE_DIR)) is not None and v.strip():
            values["cache_dir"] = Path(v.strip())
        if (v := env.get(c.ENV_CACHE_MAX_BYTES)) is not None and v.strip():
            values["cache_max_bytes"] = _int(c.ENV_CACHE_MAX_BYTES, v, 0)
        if (v := env.get(c.ENV_LOCAL_PATHS)) is not None:
            values["local_paths"] = tuple(Path(p) for p in v.split(os.pathsep) if p.strip())
        if (v := env.get(c.ENV_FETCH_CONCURRENCY)) is not None:
            values["fetch_concurrency"] = _int(c.ENV_FETCH_CONCURRENCY, v, 1, 256)
        if (v := env.get(c.ENV_FETCH_RETRIES)) is not None:
            values["fetch_retries"] = _int(c.ENV_FETCH_RETRIES, v, 0, 20)
        if (v := env.get(c.ENV_FETCH_TIMEOUT)) is not None:
            values["fetch_timeout_s"] = _float(c.ENV_FETCH_TIMEOUT, v, 0.001)
        if (v := env.get(c.ENV_ALLOW_STALE)) is not None:
            values["allow_stale"] = _bool(c.ENV_ALLOW_STALE, v)
        if (v := env.get(c.ENV_WARMUP)) is not None:
            values["warmup"] = _bool(c.ENV_WARMUP, v)
        if (v := env.get(c.ENV_PREFETCH)) is not None:
            values["prefetch"] = _bool(c.ENV_PREFETCH, v)
        if (v := env.get(c.ENV_WARM_HOLD_CAP_MS)) is not None:
            values["warm_hold_cap_ms"] = _int(c.ENV_WARM_HOLD_CAP_MS, v, 0)
        if (v := env.get(c.ENV_TF_IMPORT)) is not None and v.strip():
            values["tf_import"] = _choice(c.ENV_TF_IMPORT, v, c.TF_IMPORT_CHOICES)
        if (v := env.get(c.ENV_FETCH_ENGINE)) is not None and v.strip():
            values["fetch_engine"] = _choice(c.ENV_FETCH_ENGINE, v, c.FETCH_ENGINES)
        if (v := env.get(c.ENV_INIT_BUDGET_S)) is not None and v.strip():
            values["init_budget_s"] = _float_within(
                c.ENV_INIT_BUDGET_S, v, 0.0, c.MAX_INIT_BUDGET_S, "0 (off)"
            )
        known = {f.name for f in fields(cls)}
        for key, value in overrides.items():
            if key not in known:
                raise ConfigurationError(
                    key, value, f"unknown setting; known: {', '.join(sorted(known))}"
                )
            if value is not None:
                values[key] = Path(value) if key == "cache_dir" else value
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def cache_budget(self) -> int:
        """The disk tier's byte budget: the setting, or 80% of the free space now."""
        if self.cache_max_bytes is not None:
            return self.cache_max_bytes
        probe = self.cache_dir
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return int(shutil.disk_usage(probe).free * c.DEFAULT_CACHE_FREE_FRACTION)
