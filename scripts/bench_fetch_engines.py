"""Fetch engines side by side: botocore (today's fallback), obstore and awscrt, same chunks.

The benchmark lives in preheat.tools.microbench.fetch_engines; this is its entry point from a checkout.
"""

from __future__ import annotations

import sys

from preheat.tools.microbench.fetch_engines import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
