"""``python -m amlretrain``: the command line."""

import sys

from amlretrain.cli import main

sys.exit(main())
