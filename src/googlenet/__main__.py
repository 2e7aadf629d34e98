"""``python -m googlenet`` (and ``torchrun -m googlenet``) runs the command line."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the command line loads: no traceback
    print("googlenet: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
