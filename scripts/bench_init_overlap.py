"""INIT of the inference function with the model fetch overlapping `import tensorflow`,

The benchmark lives in preheat.tools.microbench.init_overlap; this is its entry point from a checkout.
"""

from __future__ import annotations

import sys

from preheat.tools.microbench.init_overlap import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
