"""Warm targets and options, from an event or from the warmer's environment variables."""

from __future__ import annotations

from typing import Any

import pytest

from preheat.exceptions import ConfigurationError
from preheat.warm.engine import Target
from preheat.warm.targets import options_from, parse_targets, targets_from_event

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:infer"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("infer:live=10", [Target("infer", "live", 10)]),
        ("infer=3, other:7=1", [Target("infer", None, 3), Target("other", "7", 1)]),
        ("infer", [Target("infer", None, 1)]),
        (f"{ARN}:live=4", [Target(ARN, "live", 4)]),
        (f"{ARN}=4", [Target(ARN, None, 4)]),
        (
            '[{"function": "infer", "qualifier": "live", "concurrency": 2}]',
            [Target("infer", "live", 2)],
        ),
        ('{"function": "infer"}', [Target("infer", None, 1)]),
        ("  ", []),
    ],
)
def test_parse_targets(text: str, expected: list[Target]) -> None:
    assert parse_targets(text) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("infer=ten", "number"),
        ("infer=0", "concurrency"),
        ("[{", "JSON"),
        ([{"function": ""}], "function"),
        ([{"function": "f", "qualifier": ""}], "qualifier"),
        ([{"function": "f", "concurency": 3}], "unknown keys"),
        ([{"function": "f", "concurrency": "3"}], "concurrency"),
        ([1], "targets"),
        (42, "targets"),
    ],
)
def test_bad_targets_are_refused_with_the_field_named(value: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        parse_targets(value)


def test_event_targets_win_over_the_default() -> None:
    event = {"targets": [{"function": "a", "concurrency": 2}]}
    assert targets_from_event(event, "b=5") == [Target("a", None, 2)]


def test_eventbridge_detail_targets() -> None:
    event = {"detail-type": "Scheduled Event", "detail": {"targets": "a:live=2"}}
    assert targets_from_event(event, None) == [Target("a", "live", 2)]


def test_scheduled_event_without_targets_uses_the_default() -> None:
    event = {"detail-type": "Scheduled Event", "detail": {}}
    assert targets_from_event(event, "b:live=5") == [Target("b", "live", 5)]
    assert targets_from_event(event, None) == []


def test_options_from_event_then_environment() -> None:
    env = {"PREHEAT_WARM_MAX_ROUNDS": "3", "PREHEAT_WARM_HOLD_MS": "400"}
    assert options_from({}, env) == {"max_rounds": 3, "hold_ms": 400.0}
    assert options_from({"max_rounds": 7}, env) == {"max_rounds": 7, "hold_ms": 400.0}
    assert options_from({}, {}) == {}


@pytest.mark.parametrize(
    ("source", "env"),
    [
        ({"max_rounds": 0}, {}),
        ({}, {"PREHEAT_WARM_MAX_ROUNDS": "many"}),
        ({"hold_ms": -5}, {}),
        ({"hold_ms": True}, {}),
    ],
)
def test_bad_options_are_refused(source: dict[str, Any], env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        options_from(source, env)
