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
from typing import TYPE_CHECKING

from sandbox.repy import (
    RepyArgumentError,
    SocketClosedLocal,
    SocketClosedRemote,
    SocketWouldBlockError,
)

if TYPE_CHECKING:
    from sandbox.vessel.vesselnet import VesselNet

OVERHEAD = 64
MAX_RECV = 1 << 20
CLOSED_BY_PEER = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED)


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
        self, net: VesselNet, sock: socket.socket, peer: str, identity: tuple[str, int, str, int]
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
        self._net.charge(self._peer, sent + OVERHEAD, OVERHEAD)
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
        self._net.charge(self._peer, OVERHEAD, len(data) + OVERHEAD)
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
        self._net.forget_connection(self._identity)
        return True

    def close(self) -> bool:
        """Close; True the first time, False after."""
        with self._lock:
            first = self._release()
        if first:
            self._net.charge(self._peer, 128, 64)
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

    def __init__(self, net: VesselNet, sock: socket.socket, local: tuple[str, int]) -> None:
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
        self._net.charge(self._local[0], 64, 128)
        try:
            self._net.nanny.add_item("outsockets")
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
        self._net.charge(self._local[0], 0, len(data) + OVERHEAD)
        return ip, port, data
