"""`python -m SAFNetSpineLib ...`: the command line."""

import sys

from SAFNetSpineLib.cli import main

sys.exit(main())
