#!/usr/bin/env bash
# Set up (if needed), lint, type-check and run the whole test suite in parallel (pytest-xdist).
#   bash scripts/test.sh                 everything (what CI runs)
#   bash scripts/test.sh -m "not slow"   the quick tier: no multi-process tests
# Arguments go to pytest (-n 0: no workers); TEST_WORKERS sets the number of workers, 1-3
# (default 3: on 2 cores the suite mostly waits on processes and sockets, so a third worker
# fills the gaps; tests/support/net.py has loopback ranges for three). Groups of tests that
# must not overlap run in one worker: tests/support/groups.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy seattlecore sandbox nodemanager overlay seash installer testbed
.venv/bin/pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-3}" --dist loadgroup "$@"
