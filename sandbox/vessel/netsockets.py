"""The socket objects Repy hands to a vessel: a TCP connection and the two listeners.

Each wraps one non-blocking OS socket and a lock. As in Seattle (``emulcomm.py``), a closed
socket raises ``SocketClosedLocal``, a peer's close is detected before sending
(``SocketClosedRemote``, never a silent first send), ``close()`` returns True only the
first time, and a socket the program drops is closed when it is collected.
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import threading
from typing import Protocol

from sandbox.repy import (
    RepyArgumentError,
    SocketClosedLocal,
    SocketClosedRemote,
    SocketWouldBlockError,
)

Identity = tuple[str, int, str, int]
"""A TCP connection's (local IP, local port, remote IP, remote port)."""
ListenKey = tuple[str, str, int]
"""A listener's (protocol, local IP, local port)."""

Charge = tuple[int, int]
"""Bytes charged for one network event: (sent, received). A plain tuple, not a NamedTuple:
the class would cost the vessel's start-up import time."""

PACKET_OVERHEAD = 64
"""What Seattle charges for one packet's headers (64 bytes, a minimum Ethernet frame): every
send, receive and datagram costs this on top of its payload, and each TCP segment's
acknowledgement costs it in the other direction."""
CONNECT: Charge = (2 * PACKET_OVERHEAD, PACKET_OVERHEAD)
"""``openconnection``'s handshake: the SYN and the final ACK go out, the SYN/ACK comes in."""
ACCEPT: Charge = (PACKET_OVERHEAD, 2 * PACKET_OVERHEAD)
"""``getconnection``'s side of the handshake: the SYN and the ACK come in, the SYN/ACK goes
out."""
CLOSE: Charge = (2 * PACKET_OVERHEAD, PACKET_OVERHEAD)
"""A TCP close as Seattle charged it: our FIN and the ACK of the peer's FIN go out, the
peer's ACK of our FIN comes in."""
MAX_RECV = 1 << 20
CLOSED_BY_PEER = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED)


class SocketAccounting(Protocol):
    """What a socket needs from its vessel's network: rate waits and charges, and the
    release of the resource items (``outsockets``, ``insockets``) it holds."""

    def wait(self, peer: str, *directions: str) -> None:
        """Block while the rates for ``peer`` (``send``/``recv``) are over budget."""

    def charge(self, peer: str, sent: int, received: int) -> None:
        """Count bytes sent to and received from ``peer``."""

    def take_outsocket(self) -> None:
        """Hold one ``outsockets`` item for an accepted connection (raises when exhausted)."""

    def connection_closed(self, identity: Identity) -> None:
        """Forget a closed connection and free its ``outsockets`` item."""

    def stopped_listening(self, key: ListenKey) -> None:
        """Forget a closed listener and free its ``insockets`` item."""


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def as_bytes(data: object) -> bytes:
    if type(data) is str:
        return data.encode("utf-8")
    if type(data) is not bytes:
        raise RepyArgumentError("data must be bytes or str")
    return data


def peer_closed(sock: socket.socket) -> bool:
    """True if the peer has closed: readable, yet a peek returns nothing."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError as exc:
        return exc.errno in CLOSED_BY_PEER


class RepySocket:
    """A connected TCP socket: ``send``, ``recv``, ``close``."""

    __slots__ = ("_identity", "_lock", "_net", "_peer", "_sock")

    def __init__(
        self, net: SocketAccounting, sock: socket.socket, peer: str, identity: Identity
    ) -> None:
        self._net = net
        self._sock: socket.socket | None = sock
        self._peer = peer
        self._identity = identity
        self._lock = threading.Lock()

    def _live(self) -> socket.socket:
        if self._sock is None:
            raise SocketClosedLocal("the socket is closed")
        return self._sock

    def send(self, message: object) -> int:
        """Send what fits now; return the count (may be partial)."""
        payload = as_bytes(message)
        self._net.wait(self._peer, "send", "recv")
        with self._lock:
            sock = self._live()
            if peer_closed(sock):
                raise SocketClosedRemote("the socket was closed by the remote end")
            try:
                sent = sock.send(payload)
            except BlockingIOError:
                raise SocketWouldBlockError("send() would block") from None
            except OSError as exc:
                raise self._broken(exc) from None
        self._net.charge(self._peer, sent + PACKET_OVERHEAD, PACKET_OVERHEAD)
        return sent

    def recv(self, size: object) -> bytes:
        """Return up to ``size`` bytes that have arrived."""
        if type(size) is not int or size <= 0:
            raise RepyArgumentError("recv needs an int > 0")
        self._net.wait(self._peer, "recv", "send")
        with self._lock:
            sock = self._live()
            try:
                data = sock.recv(min(size, MAX_RECV))
            except BlockingIOError:
                raise SocketWouldBlockError("there is no data; recv() would block") from None
            except OSError as exc:
                raise self._broken(exc) from None
            if not data:
                raise SocketClosedRemote("the socket was closed by the remote end")
        self._net.charge(self._peer, PACKET_OVERHEAD, len(data) + PACKET_OVERHEAD)
        return data

    def _broken(self, exc: OSError) -> Exception:
        """Close after an OS error (lock held) and say whose fault it was."""
        self._release()
        if exc.errno in CLOSED_BY_PEER:
            return SocketClosedRemote("the socket was closed by the remote end")
        return SocketClosedLocal(f"the socket failed and was closed ({exc.strerror})")

    def _release(self) -> bool:
        if self._sock is None:
            return False
        sock, self._sock = self._sock, None
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        sock.close()
        self._net.connection_closed(self._identity)
        return True

    def close(self) -> bool:
        """Close; True the first time, False after."""
        with self._lock:
            first = self._release()
        if first:
            self._net.charge(self._peer, *CLOSE)
        return first

    def __del__(self) -> None:
        if getattr(self, "_sock", None) is not None:
            try:
                self._release()
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"<socket to {self._peer}>"


class Listener:
    """A bound listening socket of one vessel; ``close`` frees its ``insockets`` item."""

    __slots__ = ("_local", "_lock", "_net", "_sock")
    proto = ""

    def __init__(self, net: SocketAccounting, sock: socket.socket, local: tuple[str, int]) -> None:
        self._net = net
        self._sock: socket.socket | None = sock
        self._local = local
        self._lock = threading.Lock()

    def _live(self) -> socket.socket:
        if self._sock is None:
            raise SocketClosedLocal("the listening socket is closed")
        return self._sock

    def close(self) -> bool:
        """Stop listening; True the first time, False after."""
        with self._lock:
            if self._sock is None:
                return False
            sock, self._sock = self._sock, None
            sock.close()
        self._net.stopped_listening((self.proto, *self._local))
        return True

    def __del__(self) -> None:
        if getattr(self, "_sock", None) is not None:
            try:
                self.close()
            except Exception:
                pass


class TCPServerSocket(Listener):
    """A TCP listener: ``getconnection`` and ``close``."""

    __slots__ = ()
    proto = "tcp"

    def getconnection(self) -> tuple[str, int, RepySocket]:
        self._net.wait(self._local[0], "recv", "send")
        with self._lock:
            try:
                conn, (ip, port) = self._live().accept()
            except BlockingIOError:
                raise SocketWouldBlockError("no connection is waiting") from None
        self._net.charge(self._local[0], *ACCEPT)
        try:
            self._net.take_outsocket()
        except BaseException:
            conn.close()
            raise
        conn.setblocking(False)
        identity = (self._local[0], self._local[1], ip, port)
        return ip, port, RepySocket(self._net, conn, ip, identity)


class UDPServerSocket(Listener):
    """A UDP listener: ``getmessage`` and ``close``."""

    __slots__ = ()
    proto = "udp"

    def getmessage(self) -> tuple[str, int, bytes]:
        self._net.wait(self._local[0], "recv")
        with self._lock:
            try:
                data, (ip, port) = self._live().recvfrom(65535)
            except BlockingIOError:
                raise SocketWouldBlockError("no message is waiting") from None
        self._net.charge(self._local[0], 0, len(data) + PACKET_OVERHEAD)
        return ip, port, data
