#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite with lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy seattlecore sandbox nodemanager overlay seash installer testbed
.venv/bin/pytest -q -p no:cacheprovider "$@"
