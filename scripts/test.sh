#!/usr/bin/env bash
# Set up (if needed), lint, type-check and run the whole test suite in parallel (pytest-xdist).
#   bash scripts/test.sh                 everything (what CI runs)
#   bash scripts/test.sh -m "not slow"   the quick tier: no multi-process tests
# Arguments go to pytest; TEST_WORKERS sets the number of workers (default 3: on 2 cores the
# suite mostly waits on processes and sockets, so a third worker fills the gaps).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy seattlecore sandbox nodemanager overlay seash installer testbed
.venv/bin/pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-3}" --dist loadgroup "$@"
