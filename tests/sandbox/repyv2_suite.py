"""Seattle's Repy V2 suite as a table: ``python -m tests.sandbox.repyv2_suite`` (``tests.support.repyv2``)."""

from __future__ import annotations

import sys

from tests.support.repyv2 import main

if __name__ == "__main__":
    sys.exit(main())
