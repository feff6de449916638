"""Bytes a deploy uploads: a ResNet50-class model deployed, then redeployed with one layer changed.

The benchmark lives in preheat.tools.microbench.deploy; this is its entry point from a checkout.
"""

from __future__ import annotations

import sys

from preheat.tools.microbench.deploy import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
