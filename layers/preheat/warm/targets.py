"""Which functions to warm, and how many environments each: from an event or a variable.

Two spellings: a JSON list ([{"function": "f", "qualifier": "live", "concurrency": 10}]) or
the compact "f:live=10,g=2" (a full function ARN works in place of the name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from preheat import constants as c
from preheat.exceptions import ConfigurationError
from preheat.warm.engine import Target

_EXAMPLE = 'use [{"function": "name", "qualifier": "live", "concurrency": 10}] or "name:live=10"'


def _one(item: object, where: str) -> Target:
    if not isinstance(item, Mapping):
        raise ConfigurationError(where, item, _EXAMPLE)
    unknown = set(item) - {"function", "qualifier", "concurrency"}
    if unknown:
        raise ConfigurationError(where, item, f"unknown keys {sorted(unknown)}; {_EXAMPLE}")
    function = item.get("function")
    if not isinstance(function, str) or not function.strip():
        raise ConfigurationError(f"{where}.function", function, "name a Lambda function")
    qualifier = item.get("qualifier")
    if qualifier is not None and (not isinstance(qualifier, str) or not qualifier.strip()):
        raise ConfigurationError(f"{where}.qualifier", qualifier, "name an alias or version")
    return Target(
        function.strip(), qualifier.strip() if qualifier else None, item.get("concurrency", 1)
    )


def _compact(entry: str, where: str) -> Target:
    name, eq, count = entry.rpartition("=")
    if not eq:
        name, count = entry, "1"
    try:
        concurrency = int(count.strip())
    except ValueError:
        raise ConfigurationError(
            where, entry, f"the count after '=' must be a number; {_EXAMPLE}"
        ) from None
    name = name.strip()
    qualifier: str | None = None
    if name.startswith("arn:"):
        # arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
        parts = name.split(":")
        if len(parts) == 8:
            name, qualifier = ":".join(parts[:7]), parts[7]
    elif ":" in name:
        name, _, qualifier = name.partition(":")
    if not name:
        raise ConfigurationError(where, entry, _EXAMPLE)
    return Target(name, qualifier or None, concurrency)


def parse_targets(value: object, where: str = "targets") -> list[Target]:
    """Targets from a list of objects, a JSON string of one, or the compact spelling."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text[0] in "[{":
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise ConfigurationError(
                    where, text[:80], f"not valid JSON ({exc}); {_EXAMPLE}"
                ) from None
        else:
            return [_compact(e, where) for e in text.split(",") if e.strip()]
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise ConfigurationError(where, value, _EXAMPLE)
    return [_one(item, f"{where}[{i}]") for i, item in enumerate(value)]


def targets_from_event(event: object, default: str | None) -> list[Target]:
    """The event's targets (top level, or an EventBridge event's detail), else the default."""
    if isinstance(event, Mapping):
        for holder in (event, event.get("detail")):
            if isinstance(holder, Mapping) and holder.get("targets") is not None:
                return parse_targets(holder["targets"], "event.targets")
    return parse_targets(default or "", c.ENV_WARM_TARGETS)


def options_from(source: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """max_rounds and hold_ms from the event, else PREHEAT_WARM_MAX_ROUNDS/_HOLD_MS."""
    out: dict[str, Any] = {}
    for key, var, kind in (
        ("max_rounds", c.ENV_WARM_MAX_ROUNDS, int),
        ("hold_ms", c.ENV_WARM_HOLD_MS, float),
    ):
        raw = source.get(key, env.get(var))
        if raw is None or raw == "":
            continue
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(key, raw, "use a number") from None
        if isinstance(raw, bool) or value < (1 if kind is int else 0):
            raise ConfigurationError(key, raw, f"use a number >= {1 if kind is int else 0}")
        out[key] = value
    return out
