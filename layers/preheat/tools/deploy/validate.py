"""Checks of every deploy input that AWS would refuse, made before any AWS call."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from preheat.exceptions import ConfigurationError

# Lambda function names are at most 64 characters; the stack's functions are named
# "<stack>-inference" and "<stack>-warmer".
FUNCTION_SUFFIXES: tuple[str, ...] = ("-inference", "-warmer")
MAX_FUNCTION_NAME = 64
MAX_STACK_NAME = 128
MAX_STACK_NAME_FOR_FUNCTIONS = MAX_FUNCTION_NAME - max(len(s) for s in FUNCTION_SUFFIXES)

_STACK = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9._-]+$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\(([^()]+)\)$")


def bucket_name(name: str) -> str:
    """S3's rules for a general purpose bucket name."""
    fix = (
        "use 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit"
    )
    if not 3 <= len(name) <= 63:
        raise ConfigurationError("--bucket", name, f"it is {len(name)} characters; {fix}")
    if not _BUCKET_CHARS.match(name):
        raise ConfigurationError("--bucket", name, fix)
    if ".." in name or ".-" in name or "-." in name:
        raise ConfigurationError("--bucket", name, "no '..', '.-' or '-.' allowed; " + fix)
    if _IPV4.match(name):
        raise ConfigurationError("--bucket", name, "a bucket name cannot look like an IP address")
    if name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or name.endswith(
        ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
    ):
        raise ConfigurationError("--bucket", name, "that prefix or suffix is reserved by S3")
    return name


def stack_name(name: str) -> str:
    """CloudFormation's rules, and the room the function names need."""
    if len(name) > MAX_STACK_NAME:
        raise ConfigurationError(
            "--stack",
            f"{name[:20]}…",
            f"it is {len(name)} characters; CloudFormation allows {MAX_STACK_NAME}",
        )
    if not _STACK.match(name):
        raise ConfigurationError(
            "--stack", name, "start with a letter and use only letters, digits and '-'"
        )
    if len(name) > MAX_STACK_NAME_FOR_FUNCTIONS:
        raise ConfigurationError(
            "--stack",
            name,
            f"it is {len(name)} characters; the functions are named <stack>-inference and "
            f"<stack>-warmer and Lambda allows {MAX_FUNCTION_NAME}, so use at most "
            f"{MAX_STACK_NAME_FOR_FUNCTIONS}",
        )
    return name


def known_regions() -> list[str]:
    """The regions botocore knows Lambda in (read from its bundled data, no network)."""
    import boto3

    regions: list[str] = []
    session = boto3.session.Session()
    for partition in session.get_available_partitions():
        regions += session.get_available_regions("lambda", partition_name=partition)
    return regions


def region(name: str, known: Callable[[], Sequence[str]] = known_regions) -> str:
    regions = known()
    if name not in regions:
        close = [r for r in regions if r.split("-")[0] == name.split("-")[0]][:6]
        hint = f"; did you mean one of {', '.join(close)}" if close else ""
        raise ConfigurationError(
            "--region", name, f"Lambda has no such region (botocore knows {len(regions)}){hint}"
        )
    return name


def prefix(value: str) -> str:
    parts = value.strip("/").split("/")
    if not value.strip("/") or not all(
        _PREFIX_PART.match(p) and p not in {".", ".."} for p in parts
    ):
        raise ConfigurationError(
            "--prefix",
            value,
            "use one or more segments of letters, digits, '.', '_' or '-' separated by '/'",
        )
    if "models" in parts or "blobs" in parts:
        raise ConfigurationError(
            "--prefix", value, "give the prefix above models/ and blobs/ (e.g. preheat)"
        )
    return "/".join(parts)


def alias(name: str) -> str:
    if not _ALIAS.match(name) or name.isdigit():
        raise ConfigurationError(
            "--alias", name, "start with a letter; use letters, digits, '-' or '_' (max 128)"
        )
    return name


def schedule(expr: str) -> str:
    """An EventBridge schedule: rate(N unit) with the unit's number agreeing, or cron(6 fields)."""
    m = _RATE.match(expr)
    if m:
        n, unit = int(m[1]), m[2]
        if n < 1:
            raise ConfigurationError("--schedule", expr, "the rate must be at least 1")
        if (n == 1) != (not unit.endswith("s")):
            raise ConfigurationError(
                "--schedule", expr, "say rate(1 minute) but rate(5 minutes): singular only for 1"
            )
        return expr
    m = _CRON.match(expr)
    if m and len(m[1].split()) == 6:
        return expr
    raise ConfigurationError(
        "--schedule",
        expr,
        "use rate(N minutes|hours|days) or cron(MIN HOUR DAY MONTH WEEKDAY YEAR), "
        "e.g. rate(5 minutes) or cron(0/5 8-18 ? * MON-FRI *)",
    )


# What Lambda refuses with SnapStart (docs: "Improving startup performance with Lambda
# SnapStart", supported features and limitations).
SNAPSTART_MIN_PYTHON = (3, 12)
SNAPSTART_MAX_EPHEMERAL_MB = 512


def snapstart(python: str, provisioned: int) -> None:
    """SnapStart's own limits that a request can break before anything is built.

    The other one, ephemeral storage, depends on the model's size (see deploy.model).
    """
    try:
        version = tuple(int(p) for p in python.split("."))
    except ValueError:
        version = (0,)
    if version < SNAPSTART_MIN_PYTHON:
        raise ConfigurationError(
            "--python", python, "SnapStart needs Python 3.12 or later: use --python 3.12"
        )
    if provisioned:
        raise ConfigurationError(
            "--provisioned",
            provisioned,
            "Lambda refuses provisioned concurrency on a SnapStart function: drop "
            "--provisioned (restores already start in well under a second) or --snapstart",
        )


def int_range(option: str, value: int, low: int, high: int, unit: str = "") -> int:
    if isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(option, value, f"use {low} to {high}{unit}")
    return value
