#!/usr/bin/env bash
# Set up (if needed) and run the local demo: a 5-node testbed on loopback, a program run on
# every vessel with every log printed, then everything stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "\$ seattle-sandbox run examples/hello.py alpha beta      # one program, locally"
.venv/bin/seattle-sandbox run examples/hello.py alpha beta
echo
echo "\$ seattle-testbed demo --nodes 5"
.venv/bin/seattle-testbed demo --nodes 5
