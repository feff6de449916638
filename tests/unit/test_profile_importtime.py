"""The -X importtime parser and the rankings, on output captured from a real interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from preheat.tools.profile import importtime as it


def importtime_lines(code: str, cwd: Path | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )
    return done.stderr.splitlines()


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return importtime_lines("import json, email.mime.text")


@pytest.fixture(scope="module")
def tree(lines: list[str]) -> it.ImportTree:
    return it.parse(lines)


def by_name(tree: it.ImportTree, name: str) -> it.ImportNode:
    node = tree.find(name)
    assert node is not None, f"{name} not in the tree"
    return node


def test_every_line_becomes_one_node_and_times_add_up(
    lines: list[str], tree: it.ImportTree
) -> None:
    import_lines = [x for x in lines if x.startswith("import time:") and it.HEADER not in x]
    nodes = list(tree.nodes())
    assert tree.lines == len(import_lines) == len(nodes)
    assert all(n.finished for n in nodes)
    for node in nodes:
        # CPython's self time is its cumulative time minus its children's (each rounded to
        # the microsecond on its own).
        rest = node.cumulative_us - sum(c.cumulative_us for c in node.children)
        assert abs(node.self_us - rest) <= len(node.children) + 1
        assert all(c.depth == node.depth + 1 and c.parent is node for c in node.children)
    assert tree.total_us == sum(r.cumulative_us for r in tree.roots)


def test_post_order_lines_rebuild_the_nesting(tree: it.ImportTree) -> None:
    text = by_name(tree, "email.mime.text")
    assert text.depth == 0 and text.parent is None
    assert by_name(tree, "json.decoder").chain() == ["json"]
    nonmultipart = by_name(tree, "email.mime.nonmultipart")
    assert nonmultipart.chain() == ["email.mime.text"]
    assert any(n.name == "email.mime.base" for n in nonmultipart.walk())
    # Modules loaded before the -c code ran are roots too, in the order they finished.
    assert [r.name for r in tree.roots][-2:] == ["json", "email.mime.text"]


def test_an_import_that_raised_still_has_its_line_and_children(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text("import email.mime.text\nraise RuntimeError('no')\n")
    tree = it.parse(importtime_lines("import failing", cwd=tmp_path))
    failing = tree.roots[-1]
    assert failing.name == "failing" and failing.finished
    assert [c.name for c in failing.children] == ["email.mime.text"]
    assert by_name(tree, "email.mime.nonmultipart").chain() == ["email.mime.text", "failing"]


def test_output_cut_off_mid_import_still_parses(lines: list[str]) -> None:
    # A kill during INIT stops the output before the outer modules' lines.
    cut = lines[: len(lines) - 1]
    tree = it.parse(cut)
    assert tree.lines == sum(1 for x in cut if x.startswith("import time:")) - 1
    assert tree.find("email.mime.text") is None
    holder = tree.roots[-1]
    assert not holder.finished and holder.name == it.UNFINISHED
    assert [c.name for c in holder.children] == ["email.mime.nonmultipart", "email.charset"][
        : len(holder.children)
    ] or holder.children
    assert by_name(tree, "email.mime.nonmultipart").chain() == [it.UNFINISHED]
    assert holder.cumulative_us == sum(c.cumulative_us for c in holder.children)


def test_lines_among_other_output_are_found(lines: list[str]) -> None:
    noisy = ["START RequestId: 1", *("[INFO] " + x for x in lines), "END RequestId: 1"]
    assert it.parse(noisy).lines == it.parse(lines).lines


def test_top_cumulative_follows_its_rule(tree: it.ImportTree) -> None:
    top = it.top_cumulative(tree.nodes(), 10, tree.total_us)
    assert top[0].node is max(tree.nodes(), key=lambda n: n.cumulative_us)
    assert [e.cumulative_us for e in top] == sorted((e.cumulative_us for e in top), reverse=True)
    listed = {id(e.node) for e in top}
    for entry in top:
        ancestors = []
        up = entry.node.parent
        while up is not None:
            ancestors.append(up)
            up = up.parent
        assert entry.chain == tuple(a.name for a in ancestors)
        nearest = next((a for a in ancestors if id(a) in listed), None)
        if nearest is not None:
            assert entry.cumulative_us >= it.LARGE_SHARE * tree.total_us
            assert entry.cumulative_us < it.RESTATED_SHARE * nearest.cumulative_us
    # What was left out is either small or restates a listed ancestor... or ranked below.
    cutoff = top[-1].cumulative_us
    for node in tree.nodes():
        if id(node) in listed or node.cumulative_us <= cutoff:
            continue
        up = node.parent
        while up is not None and id(up) not in listed:
            up = up.parent
        assert up is not None, f"{node.name} is large, has no listed ancestor, yet is not listed"


def test_top_self_ranks_own_time(tree: it.ImportTree) -> None:
    top = it.top_self(tree.nodes(), 5)
    assert len(top) == 5
    assert top[0].self_us == max(n.self_us for n in tree.nodes())
    assert [e.self_us for e in top] == sorted((e.self_us for e in top), reverse=True)


def test_format_chain_elides_the_middle_of_long_chains() -> None:
    assert it.format_chain("a", ["b", "c"]) == "a ← b ← c"
    long = it.format_chain("x", [f"m{i}" for i in range(10)], keep=4)
    assert long == "x ← m0 ← m1 ← … ← m8 ← m9"
