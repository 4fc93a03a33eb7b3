#!/usr/bin/env bash
# Set up (if needed) and run the local demo: a 5-node testbed on loopback (each node manager a
# DHT node with sandboxed vessels), then seash finds every vessel through the DHT, runs an
# example program on all of them at once, prints their logs, and the testbed is torn down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BIN="$PWD/.venv/bin"
DIR="$(mktemp -d /tmp/seattle-demo.XXXXXX)"
trap '"$BIN/seattle-testbed" down --dir "$DIR/testbed" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT

echo "\$ seattle-sandbox run examples/hello.py alpha beta     # one program, locally"
"$BIN/seattle-sandbox" run examples/hello.py alpha beta

echo; echo "\$ seattle-testbed up --nodes 5 --wait"
"$BIN/seattle-testbed" up --nodes 5 --wait --dir "$DIR/testbed"
BOOT="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bootstrap"])' "$DIR/testbed/testbed.json")"

echo; echo "\$ seash --bootstrap $BOOT examples/demo.seash"
cd examples
"$BIN/seash" --home "$DIR/testbed/keys" --bootstrap "$BOOT" demo.seash
cd ..

echo; echo "\$ seattle-testbed down"
"$BIN/seattle-testbed" down --dir "$DIR/testbed"
