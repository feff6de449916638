"""The slimmer: smaller artifacts (TensorFlow exact, LiteRT fp32/fp16/int8) with measured parity."""

from preheat.tools.slim.parity import DEFAULT_MAX_REL_ERROR, Tolerance
from preheat.tools.slim.slimmer import DEFAULT_PRECISION, RUNTIMES, SlimResult, slim

__all__ = [
    "DEFAULT_MAX_REL_ERROR",
    "DEFAULT_PRECISION",
    "RUNTIMES",
    "SlimResult",
    "Tolerance",
    "slim",
]
