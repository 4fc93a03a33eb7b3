#!/usr/bin/env bash
# Set up (if needed) and run the local demo: example programs in sandboxed vessels.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run() { echo; echo "\$ seattle-sandbox run $*"; .venv/bin/seattle-sandbox run "$@"; }
run examples/hello.py alpha beta
run examples/pingpong.py
run --resources examples/busy.resources examples/busy.py
echo; echo "\$ seattle-sandbox run examples/escape.py   (a hostile program)"
.venv/bin/seattle-sandbox run examples/escape.py || echo "(refused, as it must be)"
