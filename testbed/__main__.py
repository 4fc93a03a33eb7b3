"""``python -m testbed``: the same as ``seattle-testbed``."""

import sys

from testbed.cli import main

if __name__ == "__main__":
    sys.exit(main())
