"""Python's `-X importtime` output as a tree, and the imports that cost most in it.

CPython prints one line per module it loads, `import time: SELF | CUMULATIVE | NAME`, with
times in microseconds and two spaces of indentation per nesting level. A module's line comes
after its children's (post-order), so the tree is rebuilt from the bottom up: each line adopts
the lines one level deeper that arrived since the previous line at its own level.

CPython keeps one nesting counter per process, not per thread: a module imported by a
background thread while the main thread is importing is drawn as a child of whatever the main
thread was importing at that moment. A module whose import was cut off (the process killed,
an INIT timeout) prints no line; its children are kept under a placeholder marked unfinished.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

# The header every process prints once, before its first import line.
HEADER = "import time: self [us] | cumulative | imported package"
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S.*?)\s*$")

# The listing rule of `top_cumulative`, in one place so that the text and the docs agree.
LARGE_SHARE = 0.05  # an import inside a listed one is listed too from 5% of all import time
RESTATED_SHARE = 0.9  # ... unless it carries 90% or more of that listed import (same cost)

UNFINISHED = "(import that did not finish)"


@dataclass(eq=False)
class ImportNode:
    """One module's import: its own time, its time with its children, and those children."""

    name: str
    self_us: int
    cumulative_us: int
    depth: int
    children: list[ImportNode] = field(default_factory=list)
    parent: ImportNode | None = field(default=None, repr=False)
    # False for a placeholder holding imports whose parent never printed its line.
    finished: bool = True

    def walk(self) -> Iterator[ImportNode]:
        """This node and every node below it, parents first."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def chain(self) -> list[str]:
        """The names of the imports that pulled this one in, nearest first."""
        names = []
        node = self.parent
        while node is not None:
            names.append(node.name)
            node = node.parent
        return names

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "self_us": self.self_us,
            "cumulative_us": self.cumulative_us,
        }
        if not self.finished:
            doc["finished"] = False
        if self.children:
            doc["children"] = [c.to_dict() for c in self.children]
        return doc


@dataclass
class ImportTree:
    """Every import one process made, in the order they finished; `roots` are level 0."""

    roots: list[ImportNode]
    lines: int  # import lines parsed

    @property
    def total_us(self) -> int:
        return sum(r.cumulative_us for r in self.roots)

    def nodes(self) -> Iterator[ImportNode]:
        for root in self.roots:
            yield from root.walk()

    def find(self, name: str) -> ImportNode | None:
        """The shallowest import of `name`, if it was imported."""
        best: ImportNode | None = None
        for node in self.nodes():
            if node.name == name and node.finished and (best is None or node.depth < best.depth):
                best = node
        return best

    def max_depth(self) -> int:
        return max((n.depth for n in self.nodes()), default=-1)


def parse(lines: Iterable[str]) -> ImportTree:
    """Rebuild the import tree from `-X importtime` lines; any other line is ignored.

    Lines may sit among a program's other output (the text before `import time:` is
    dropped), so a log that mixes stderr and stdout parses as it is.
    """
    # pending[d]: finished nodes at depth d still waiting for their parent's line.
    pending: dict[int, list[ImportNode]] = {}
    count = 0
    for raw in lines:
        m = _LINE.search(raw)
        if m is None:
            continue
        count += 1
        self_us, cum_us, indent, name = int(m[1]), int(m[2]), len(m[3]), m[4]
        depth = indent // 2
        node = ImportNode(name, self_us, cum_us, depth)
        # Lines deeper than depth+1 still pending lost their parent's line (output garbled by
        # threads): fold them under placeholders so that their time still counts here.
        _fold(pending, depth + 1)
        children = pending.pop(depth + 1, [])
        _adopt(node, children)
        pending.setdefault(depth, []).append(node)
    roots = _close(pending)
    return ImportTree(roots, count)


def _adopt(parent: ImportNode, children: list[ImportNode]) -> None:
    parent.children = children
    for child in children:
        child.parent = parent


def _placeholder(children: list[ImportNode], depth: int) -> ImportNode:
    # What we know of an import that printed no line: at least its children's time.
    node = ImportNode(UNFINISHED, 0, sum(c.cumulative_us for c in children), depth, finished=False)
    _adopt(node, children)
    return node


def _fold(pending: dict[int, list[ImportNode]], down_to: int) -> None:
    while pending and max(pending) > down_to:
        deepest = max(pending)
        holder = _placeholder(pending.pop(deepest), deepest - 1)
        pending.setdefault(deepest - 1, []).append(holder)


def _close(pending: dict[int, list[ImportNode]]) -> list[ImportNode]:
    """Hang what is still pending at the end (cut-off imports) under placeholders."""
    _fold(pending, 0)
    return pending.get(0, [])


def split_processes(lines: Iterable[str]) -> list[list[str]]:
    """The lines of each Python process in a log, split at the header each one prints first."""
    parts: list[list[str]] = [[]]
    for line in lines:
        if HEADER in line and parts[-1]:
            parts.append([])
        parts[-1].append(line)
    return [p for p in parts if any(_LINE.search(x) for x in p)]


# -- what to show ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One import in a ranking, with the chain of imports that pulled it in (nearest first)."""

    name: str
    self_us: int
    cumulative_us: int
    chain: tuple[str, ...]
    node: ImportNode = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "self_us": self.self_us,
            "cumulative_us": self.cumulative_us,
            "chain": list(self.chain),
        }


def _entry(node: ImportNode) -> Entry:
    return Entry(node.name, node.self_us, node.cumulative_us, tuple(node.chain()), node)


def top_cumulative(
    nodes: Iterable[ImportNode],
    n: int,
    total_us: int,
    *,
    large_share: float = LARGE_SHARE,
    restated_share: float = RESTATED_SHARE,
) -> list[Entry]:
    """The `n` imports that cost most, with their time and everything they imported.

    The rule, taking imports by cumulative time, largest first: an import none of whose
    ancestors is listed yet is listed (a new place where time goes). An import inside a
    listed one is listed too only if it is large on its own, at least `large_share` of
    `total_us`, and does not merely restate its nearest listed ancestor, i.e. carries less
    than `restated_share` of that ancestor's time (a package whose `__init__` only imports
    one submodule adds nothing: it shows in the chain instead).
    """
    listed: list[Entry] = []
    chosen: set[int] = set()
    for node in sorted(nodes, key=lambda x: x.cumulative_us, reverse=True):
        if len(listed) >= n:
            break
        if not node.finished:
            continue
        ancestor = _nearest_listed(node, chosen)
        if ancestor is not None and (
            node.cumulative_us < large_share * total_us
            or node.cumulative_us >= restated_share * ancestor.cumulative_us
        ):
            continue
        chosen.add(id(node))
        listed.append(_entry(node))
    return listed


def _nearest_listed(node: ImportNode, chosen: set[int]) -> ImportNode | None:
    up = node.parent
    while up is not None:
        if id(up) in chosen:
            return up
        up = up.parent
    return None


def top_self(nodes: Iterable[ImportNode], n: int) -> list[Entry]:
    """The `n` imports whose own code (module body, not children) took longest."""
    ranked = sorted((x for x in nodes if x.finished), key=lambda x: x.self_us, reverse=True)
    return [_entry(x) for x in ranked[:n]]


def format_chain(name: str, chain: Iterable[str], *, keep: int = 6) -> str:
    """`matplotlib ← keras.src.visualization ← keras ← tensorflow`, middle elided past `keep`."""
    links = list(chain)
    if len(links) > keep:
        links = [*links[: keep - 2], "…", *links[-2:]]
    return " ← ".join([name, *links])
