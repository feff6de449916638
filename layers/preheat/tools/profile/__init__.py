"""`preheat profile`: where a Python Lambda's INIT goes, from one cold start under -X importtime.

Tools side: it drives the local Lambda (preheat.tools.emulator) and never runs inside Lambda.
"""

from preheat.tools.profile.importtime import ImportNode, ImportTree, parse, top_cumulative, top_self
from preheat.tools.profile.run import ColdStart, cold_start, parse_target

__all__ = [
    "ColdStart",
    "ImportNode",
    "ImportTree",
    "cold_start",
    "parse",
    "parse_target",
    "top_cumulative",
    "top_self",
]
