"""The cold-start benchmark from a checkout: the same as `preheat bench`.

.venv/bin/python scripts/bench.py --sample resnet50 --network lambda --cold-starts 5
.venv/bin/python scripts/bench.py --help
"""

from __future__ import annotations

import sys

from preheat.tools.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
