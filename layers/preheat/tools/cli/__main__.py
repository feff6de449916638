import sys

from preheat.tools.cli import main

sys.exit(main())
