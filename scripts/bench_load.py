"""The inference function under load on the local Lambda: correctness first, then latency.

The benchmark lives in preheat.tools.microbench.load; this is its entry point from a checkout.
"""

from __future__ import annotations

import sys

from preheat.tools.microbench.load import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
