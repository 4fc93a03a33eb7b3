#!/usr/bin/env bash
# Create .venv and install the project with its test tools (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ldconfig -p 2>/dev/null | grep -q libseccomp.so.2; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq libseccomp2 >/dev/null
    else
        echo "note: libseccomp2 is missing; vessels will run without the seccomp layer" >&2
    fi
fi
# The network lab (seattle-testbed up --lab) needs ip (iproute2) and nft (nftables), and root.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
   { ! command -v ip >/dev/null || ! command -v nft >/dev/null; }; then
    { apt-get update -qq && apt-get install -y -qq iproute2 nftables >/dev/null; } || \
        echo "note: could not install iproute2/nftables; seattle-testbed up --lab will refuse" >&2
fi
# The donor page's browser tests drive Debian's chromium (Playwright, no browser download).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromium >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
        echo "note: could not install chromium; the donor page's browser tests will fail" >&2
fi
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
log=$(mktemp)
if ! { .venv/bin/python -m pip install -q --upgrade pip && \
       .venv/bin/python -m pip install -q -e '.[test]'; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
rm -f "$log"
echo "set up: the commands (seash, seattle-installer, seattle-testbed, seattle-dht,"
echo "seattle-nodemanager, seattle-sandbox) are in $PWD/.venv/bin; put them on PATH with"
echo "    source $PWD/.venv/bin/activate"
