"""Short-lived clients: one lookup, one status query, one network walk (trio I/O shell)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import trio

from overlay.errors import DhtUnavailable, OverlayUsageError
from overlay.node import DhtConfig, DhtNode, dht_loop, open_dht_node
from overlay.results import LookupResult
from overlay.wire import MSG_ID_BYTES, RESPONSE, request_datagram, unpack_wire
from seattlecore import PublicKey

STATUS_REPLY_MAX = 65_535


def parse_hostport(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> (host, port). IPv6 hosts may be bracketed."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OverlayUsageError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


async def resolve(addrs: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Resolve host names to IP literals (kademlia accepts IPs only)."""
    out = []
    for host, port in addrs:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_DGRAM)
        if infos:
            out.append((str(infos[0][4][0]), port))
    return out


def bind_host(addrs: Sequence[tuple[str, int]]) -> str:
    """The local address for client sockets: loopback when every peer is on loopback,
    else any (a socket bound to 127.0.0.1 cannot reach another host)."""
    try:
        loopback = all(ipaddress.ip_address(host).is_loopback for host, _ in addrs)
    except ValueError:  # a host name
        loopback = False
    return "127.0.0.1" if loopback else "0.0.0.0"


@asynccontextmanager
async def open_client(
    bootstrap: Sequence[tuple[str, int]], *, host: str | None = None
) -> AsyncIterator[DhtNode]:
    """Join the DHT as a short-lived client (never added to others' routing tables).

    ``host`` is the local address to bind (default: ``bind_host`` of the bootstrap peers).
    """
    addrs = await resolve(bootstrap)
    if not addrs:
        raise DhtUnavailable("no bootstrap address given")
    config = DhtConfig(host=host or bind_host(addrs), port=0, bootstrap=tuple(addrs),
                       client_mode=True)
    async with dht_loop(), open_dht_node(config) as node:
        yield node


async def lookup_once(
    user_key: PublicKey,
    bootstrap: Sequence[tuple[str, int]],
    *,
    timeout: float = 10.0,
    host: str | None = None,
) -> LookupResult:
    """Join as a client, look ``user_key`` up, leave. Raises DhtUnavailable on timeout.

    ``host`` is the local address to bind (default: ``bind_host`` of the bootstrap peers).
    """
    with trio.move_on_after(timeout):
        async with open_client(bootstrap, host=host) as node:
            return await node.lookup(user_key)
    raise DhtUnavailable(f"lookup did not finish within {timeout} s")


async def query_status(
    address: tuple[str, int], *, timeout: float = 2.0, host: str | None = None
) -> dict[str, Any]:
    """Ask a running node for its status document over its UDP port (the ``status`` RPC).

    Nodes answer only loopback callers unless started with ``remote_status``.
    """
    msg_id = os.urandom(MSG_ID_BYTES)
    request = request_datagram("status", [], msg_id)
    family = trio.socket.AF_INET6 if ":" in address[0] else trio.socket.AF_INET
    with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(("::" if family == trio.socket.AF_INET6 else host or bind_host([address]), 0))
        await sock.sendto(request, address)
        with trio.move_on_after(timeout):
            while True:
                data, _ = await sock.recvfrom(STATUS_REPLY_MAX)
                if data[: 1 + MSG_ID_BYTES] == RESPONSE + msg_id:
                    return _decode_status(data[1 + MSG_ID_BYTES :])
    raise DhtUnavailable(f"no status reply from {address[0]}:{address[1]} within {timeout} s")


def _decode_status(payload: bytes) -> dict[str, Any]:
    try:
        status = unpack_wire(payload)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise DhtUnavailable("undecodable status reply") from exc
    if not isinstance(status, dict):
        raise DhtUnavailable("node refused the status query (remote status is off)")
    return status
