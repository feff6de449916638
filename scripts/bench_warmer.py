"""Warmer benchmark on the local Lambda: preheat's verified warmer against the usual one.

The benchmark lives in preheat.tools.microbench.warmer; this is its entry point from a checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from preheat.tools.microbench.warmer import main

HANDLERS = Path(__file__).resolve().parents[1] / "tests" / "functional" / "handlers_warm"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], handlers=HANDLERS))
