"""``python -m googlenet`` (and ``torchrun -m googlenet``) runs the command line."""

import sys

from .cli import main

sys.exit(main())
