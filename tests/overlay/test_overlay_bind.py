"""Client sockets bind loopback only when every peer is on loopback (else they could not
reach a peer on another host: the network lab found seash unable to)."""

from __future__ import annotations

from overlay.client import bind_host


def test_bind_host() -> None:
    assert bind_host([("127.0.0.1", 1), ("127.0.0.2", 2)]) == "127.0.0.1"
    assert bind_host([("198.51.100.10", 1)]) == "0.0.0.0"
    assert bind_host([("127.0.0.1", 1), ("198.51.100.10", 1)]) == "0.0.0.0"
    assert bind_host([("dht.example", 1)]) == "0.0.0.0"
