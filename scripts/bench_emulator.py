"""The local Lambda's own overhead: Init Duration of an empty handler, and the latency a warm

The benchmark lives in preheat.tools.microbench.emulator_overhead; this is its entry point from a checkout.
"""

from __future__ import annotations

import sys

from preheat.tools.microbench.emulator_overhead import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
