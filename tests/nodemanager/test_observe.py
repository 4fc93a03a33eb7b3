"""Observed addresses: the line format, the echo service, and peers that lie or stall."""

from __future__ import annotations

import socket

import pytest
import trio

from nodemanager import BadResponse, ConnectionFailed
from nodemanager.nat.observe import (
    ask_observed,
    format_observation,
    local_ip,
    majority,
    observe_host,
    parse_observation,
    read_line,
    serve_observer,
)


def test_line_round_trip() -> None:
    line = format_observation("198.51.100.11", 40312)
    assert line == b"seattle-observed 1 198.51.100.11 40312\n"
    assert parse_observation(line) == "198.51.100.11"
    assert parse_observation(format_observation("2001:db8::1", 7)) == "2001:db8::1"


@pytest.mark.parametrize("line", [
    b"", b"seattle-observed 1 198.51.100.11 40312",  # no newline
    b"seattle-observed 2 198.51.100.11 40312\n", b"seattle-observed 1 1.2.3 40312\n",
    b"seattle-observed 1 198.51.100.11 0\n", b"seattle-observed 1 198.51.100.11 x\n",
    b"seattle-observed 1 198.51.100.11 40312 extra\n", b"HTTP/1.1 400 Bad Request\r\n",
    b"seattle-observed 1 \xff\xfe 1\n", b"seattle-observed 1 " + b"1" * 100 + b" 1\n",
])
def test_bad_lines_are_refused(line: bytes) -> None:
    with pytest.raises(BadResponse):
        parse_observation(line)


def test_majority() -> None:
    assert majority([]) is None
    assert majority(["a", "b", "b"]) == "b"
    assert majority(["a", "b"]) == "a"


async def test_peer_tells_us_our_address(nursery: trio.Nursery) -> None:
    port = await nursery.start(serve_observer, "127.0.0.1", 0)
    assert await ask_observed("127.0.0.1", port) == "127.0.0.1"
    assert await observe_host([("127.0.0.1", port), ("127.0.0.1", 1)], fallback="x") == "127.0.0.1"


async def test_no_peer_falls_back(nursery: trio.Nursery) -> None:
    assert await observe_host([], fallback="10.0.0.1") == "10.0.0.1"
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    assert await observe_host([("127.0.0.1", dead)], fallback="10.0.0.1") == "10.0.0.1"


async def _lying_peer(nursery: trio.Nursery, answer: bytes | None, endless: bool = False) -> int:
    """An attacker's observer: a fixed answer, an endless stream, or silence (None)."""

    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            if answer is None:
                await trio.sleep_forever()
            try:
                while True:
                    await stream.send_all(answer)
                    if not endless:
                        return
            except trio.BrokenResourceError:
                return  # the victim hung up on us: what we want

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(trio.serve_listeners, handler, listeners)
    return int(listeners[0].socket.getsockname()[1])


@pytest.mark.parametrize(("answer", "endless"), [
    (b"seattle-observed 1 6.6.6.6\n", False), (b"A" * 5000, True),
    (b"seattle-observed 1 999.1.1.1 5\n", False), (b"\n", False),
    (format_observation("127.0.0.1", 5) + b"more", False),  # one line, then bytes after it
])
async def test_lying_peer_is_ignored(nursery: trio.Nursery, answer: bytes, endless: bool) -> None:
    port = await _lying_peer(nursery, answer, endless)
    with pytest.raises(BadResponse):
        await ask_observed("127.0.0.1", port, timeout=5)
    assert await observe_host([("127.0.0.1", port)], fallback="10.0.0.1", timeout=5) == "10.0.0.1"


async def test_read_line_stops_at_the_newline_and_keeps_the_rest() -> None:
    chunks = [b"one ", b"line\nrest", b"never read"]

    async def receive(most: int) -> bytes:
        chunk = chunks.pop(0)
        assert len(chunk) <= most
        return chunk

    assert await read_line(receive) == (b"one line\n", b"rest")
    assert chunks == [b"never read"]

    async def endless(most: int) -> bytes:
        return b"A" * most

    assert await read_line(endless, limit=10) == (b"A" * 11, b"")  # no line: at most limit + 1


async def test_silent_peer_times_out(nursery: trio.Nursery) -> None:
    port = await _lying_peer(nursery, None)
    start = trio.current_time()
    with pytest.raises(ConnectionFailed, match="no answer"):
        await ask_observed("127.0.0.1", port, timeout=0.3)
    assert trio.current_time() - start < 3


async def test_one_liar_is_outvoted(nursery: trio.Nursery) -> None:
    liar = await _lying_peer(nursery, format_observation("6.6.6.6", 1))
    honest = [await nursery.start(serve_observer, "127.0.0.1", 0) for _ in range(2)]
    peers = [("127.0.0.1", liar)] + [("127.0.0.1", p) for p in honest]
    assert await observe_host(peers, fallback="x") == "127.0.0.1"


async def test_hostile_clients_do_not_stop_the_service(nursery: trio.Nursery) -> None:
    """Junk senders, a flood of idle connections, abrupt resets: the next peer is still told."""
    port = await nursery.start(serve_observer, "127.0.0.1", 0)
    socks = []
    for i in range(200):
        sock = socket.create_connection(("127.0.0.1", port))
        if i % 3 == 0:
            sock.sendall(b"\x00" * 10_000)
        if i % 3 == 1:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()  # RST
            continue
        socks.append(sock)
    try:
        assert await ask_observed("127.0.0.1", port) == "127.0.0.1"
    finally:
        for sock in socks:
            sock.close()


async def test_taken_port_is_not_fatal(nursery: trio.Nursery) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert await nursery.start(serve_observer, "127.0.0.1", taken.getsockname()[1]) is None


def test_local_ip_prefers_the_advertised_then_the_listen_address() -> None:
    peers = [("127.9.8.7", 4000)]
    assert local_ip("127.1.2.1", "127.5.5.5", peers) == "127.5.5.5"
    assert local_ip("127.1.2.1", None, peers) == "127.1.2.1"
    assert local_ip("127.1.2.1", "node.example", peers) == "127.1.2.1"  # a name is not an address
    # listening on every address: the kernel's source address towards the first peer
    # (a UDP connect sends nothing); loopback destinations leave from 127.0.0.1
    assert local_ip("0.0.0.0", None, peers) == "127.0.0.1"
    assert local_ip("0.0.0.0", None, []) == "127.0.0.1"
