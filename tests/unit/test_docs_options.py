"""The manual's option tables cannot drift from the parsers they describe."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from preheat.tools.cli import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"
# (page, verb, whether its table lists every option of the verb)
TABLES = [
    ("local-lambda.md", "emulate", True),
    ("bench.md", "bench", True),
    ("deploy.md", "deploy", False),
    ("snapstart.md", "deploy", False),
]
# Every verb has these; the pages say so once instead of in each table.
EVERY_VERB = {"--help", "--json"}


def verb_options(verb: str) -> set[str]:
    parser, _ = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = sub.choices[verb]._actions
    return {o for a in actions for o in a.option_strings if o.startswith("--")}


def documented(page: str) -> set[str]:
    """The options named in the first column of the page's tables."""
    found: set[str] = set()
    for line in (DOCS / page).read_text().splitlines():
        if line.startswith("| `-"):
            first = re.split(r"(?<!\\)\|", line)[1]
            found |= set(re.findall(r"--[a-z0-9-]+", first))
    return found


@pytest.mark.parametrize(("page", "verb", "complete"), TABLES)
def test_every_documented_option_exists(page: str, verb: str, complete: bool) -> None:
    assert documented(page) - verb_options(verb) == set()


@pytest.mark.parametrize(("page", "verb"), [(p, v) for p, v, complete in TABLES if complete])
def test_a_complete_table_lists_every_option(page: str, verb: str) -> None:
    options = verb_options(verb)
    listed = documented(page)
    # A --no-X switch documents its --X twin (argparse.BooleanOptionalAction makes both).
    listed |= {f"--{o[5:]}" for o in listed if o.startswith("--no-")}
    assert options - listed - EVERY_VERB == set()


def test_the_check_sees_an_option_inside_an_escaped_pipe() -> None:
    assert documented("local-lambda.md") >= {"--init-cpu", "--cpus", "--no-confine"}
