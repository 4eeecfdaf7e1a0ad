"""python -m linesweep.compare [folders] [options]: see linesweep/compare/cli.py."""

import sys

from linesweep.compare.cli import main

sys.exit(main())
