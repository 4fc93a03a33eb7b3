"""Loopback addresses per pytest-xdist worker, so parallel tests never share an address.

Tests that pick their own loopback addresses (``127.A.B.C``) pass them through ``ip()``: on
worker N the second octet moves up by ``N * WORKER_STRIDE``, so worker 0 (or a run without
xdist) keeps the address it wrote and two workers never bind the same address and port.
Tests must choose second octets below ``WORKER_STRIDE``.
"""

from __future__ import annotations

import os
import socket

WORKER_STRIDE = 64
MAX_WORKERS = 3  # 127.0.0.0/8 second octets: 0-63, 64-127, 128-191 (192-255 left for the lab)


def worker_index() -> int:
    """0 for the first xdist worker (``gw0``) or a plain run; N for ``gwN``."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(name.removeprefix("gw") or 0)
    if index >= MAX_WORKERS:
        raise RuntimeError(f"{name}: loopback plan has room for {MAX_WORKERS} workers")
    return index


def ip(address: str) -> str:
    """``address`` (127.A.B.C with A < WORKER_STRIDE) moved into this worker's range."""
    first, second, rest = address.split(".", 2)
    if first != "127" or int(second) >= WORKER_STRIDE:
        raise ValueError(f"{address}: not a per-worker loopback address (127.A.B.C, A < {WORKER_STRIDE})")
    return f"127.{int(second) + WORKER_STRIDE * worker_index()}.{rest}"


def closed_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def testbed_net() -> int:
    """``$SEATTLE_TESTBED_NET`` for this worker: its testbeds' nodes at ``ip("127.1.0.1")``, ..."""
    return 1 + WORKER_STRIDE * worker_index()
