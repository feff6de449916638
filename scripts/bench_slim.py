"""Benchmark the slimmer and the layer builder on Keras ResNet50 (random weights).

The benchmark lives in preheat.tools.microbench.slim; this is its entry point from a checkout.
"""

from __future__ import annotations

import sys

from preheat.tools.microbench.slim import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
