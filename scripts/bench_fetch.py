"""Fetch benchmark: preheat's chunked fetch against boto3 on one embedded S3, same bytes.

The benchmark lives in preheat.tools.microbench.fetch; this is its entry point from a checkout.
"""

from __future__ import annotations

import sys

from preheat.tools.microbench.fetch import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
