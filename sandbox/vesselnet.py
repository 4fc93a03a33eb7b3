"""Repy's network API (``repy_v2/emulcomm.py``): mediated TCP and UDP for one vessel.

Local ports must be granted (``connport`` for TCP, ``messport`` for UDP); remote ports are
free. Local IPs are limited to loopback and the node's own IP. Sockets are non-blocking,
as in Repy: a call that would block raises SocketWouldBlockError. Every call charges the
nanny: payload + 64 bytes per send/recv, to ``loopsend``/``looprecv`` when the peer is on
loopback and to ``netsend``/``netrecv`` otherwise.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

from sandbox.nanny import Nanny
from sandbox.repy import (
    AddressBindingError,
    AlreadyListeningError,
    NetworkAddressError,
    RepyArgumentError,
    RepyConnectionRefusedError,
    RepyTimeoutError,
    SocketClosedLocal,
    SocketClosedRemote,
    SocketWouldBlockError,
    TCPServerSocketInvalidError,
)

MAX_DATAGRAM = 9216
OVERHEAD = 64


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _check_ip(value: object, what: str) -> str:
    if type(value) is not str:
        raise RepyArgumentError(f"{what} must be a str")
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise RepyArgumentError(f"{what} {value[:60]!r} is not an IPv4 address") from None
    return value


def _check_port(value: object, what: str) -> int:
    if type(value) is not int or not 0 < value < 65536:
        raise RepyArgumentError(f"{what} must be an int in 1..65535")
    return value


def _as_bytes(data: object) -> bytes:
    if type(data) is str:
        return data.encode("utf-8")
    if type(data) is not bytes:
        raise RepyArgumentError("data must be bytes or str")
    return data


class VesselNet:
    """Socket factory bound to one vessel's nanny and allowed local IPs."""

    def __init__(self, nanny: Nanny, my_ip: str) -> None:
        self.nanny = nanny
        self.my_ip = my_ip
        self._lock = threading.Lock()
        self._listening: set[tuple[str, str, int]] = set()

    def charge(self, peer: str, sent: int, received: int) -> None:
        prefix = "loop" if _is_loopback(peer) else "net"
        if sent:
            self.nanny.charge(prefix + "send", sent)
        if received:
            self.nanny.charge(prefix + "recv", received)

    def _check_local(self, localip: object, localport: object, kind: str) -> tuple[str, int]:
        ip = _check_ip(localip, "localip")
        port = _check_port(localport, "localport")
        if not _is_loopback(ip) and ip != self.my_ip:
            raise AddressBindingError(f"local IP {ip} is not one of this node's addresses")
        self.nanny.check_port(kind, port)
        return ip, port

    def openconnection(
        self, destip: object, destport: object, localip: object, localport: object, timeout: object
    ) -> RepySocket:
        dest = _check_ip(destip, "destip")
        dport = _check_port(destport, "destport")
        local = self._check_local(localip, localport, "connport")
        if type(timeout) not in (int, float) or not 0 < timeout <= 3600:  # type: ignore[operator]
            raise RepyArgumentError("timeout must be a number in (0, 3600]")
        self.charge(dest, 128, 64)
        self.nanny.add_item("outsockets")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(local)
            sock.settimeout(float(timeout))  # type: ignore[arg-type]
            sock.connect((dest, dport))
        except BaseException as exc:
            sock.close()
            self.nanny.remove_item("outsockets")
            raise _translate_connect(exc) from None
        sock.setblocking(False)
        return RepySocket(self, sock, dest)

    def listenforconnection(self, localip: object, localport: object) -> TCPServerSocket:
        local = self._check_local(localip, localport, "connport")
        sock = self._listen_socket(("tcp", *local), socket.SOCK_STREAM, local)
        sock.listen(16)
        return TCPServerSocket(self, sock, local)

    def listenformessage(self, localip: object, localport: object) -> UDPServerSocket:
        local = self._check_local(localip, localport, "messport")
        sock = self._listen_socket(("udp", *local), socket.SOCK_DGRAM, local)
        return UDPServerSocket(self, sock, local)

    def _listen_socket(self, key: tuple[str, str, int], kind: int, local: tuple[str, int]) -> socket.socket:
        with self._lock:
            if key in self._listening:
                raise AlreadyListeningError(f"already listening on {local[0]}:{local[1]}")
            self.nanny.add_item("insockets")
            sock = socket.socket(socket.AF_INET, kind)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(local)
            except OSError as exc:
                sock.close()
                self.nanny.remove_item("insockets")
                raise AddressBindingError(f"cannot bind {local[0]}:{local[1]}: {exc.strerror}") from None
            sock.setblocking(False)
            self._listening.add(key)
        return sock

    def stopped_listening(self, key: tuple[str, str, int]) -> None:
        with self._lock:
            self._listening.discard(key)
        self.nanny.remove_item("insockets")

    def sendmessage(
        self, destip: object, destport: object, message: object, localip: object, localport: object
    ) -> int:
        dest = _check_ip(destip, "destip")
        dport = _check_port(destport, "destport")
        local = self._check_local(localip, localport, "messport")
        data = _as_bytes(message)
        if len(data) > MAX_DATAGRAM:
            raise RepyArgumentError(f"messages are at most {MAX_DATAGRAM} bytes")
        self.charge(dest, len(data) + OVERHEAD, OVERHEAD)
        self.nanny.add_item("outsockets")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(local)
            return sock.sendto(data, (dest, dport))
        except OSError as exc:
            raise AddressBindingError(f"cannot send from {local[0]}:{local[1]}: {exc.strerror}") from None
        finally:
            sock.close()
            self.nanny.remove_item("outsockets")

    def gethostbyname(self, name: object) -> str:
        if type(name) is not str or not 0 < len(name) <= 253:
            raise RepyArgumentError("name must be a non-empty str of at most 253 characters")
        self.charge("0.0.0.0", 1024, 4096)
        try:
            return socket.gethostbyname(name)
        except (OSError, UnicodeError):
            raise NetworkAddressError(f"cannot resolve {name!r}") from None


def _translate_connect(exc: BaseException) -> BaseException:
    if isinstance(exc, TimeoutError | socket.timeout):
        return RepyTimeoutError("connection timed out")
    if isinstance(exc, ConnectionRefusedError):
        return RepyConnectionRefusedError("connection refused")
    if isinstance(exc, OSError):
        return AddressBindingError(f"cannot connect: {exc.strerror}")
    return exc


class RepySocket:
    """A connected TCP socket: ``send``, ``recv``, ``close``."""

    __slots__ = ("_net", "_peer", "_sock")

    def __init__(self, net: VesselNet, sock: socket.socket, peer: str) -> None:
        self._net = net
        self._sock: socket.socket | None = sock
        self._peer = peer

    def _live(self) -> socket.socket:
        if self._sock is None:
            raise SocketClosedLocal("socket is closed")
        return self._sock

    def send(self, data: object) -> int:
        """Send what fits now; return the count (may be partial)."""
        payload = _as_bytes(data)
        sock = self._live()
        try:
            sent = sock.send(payload)
        except BlockingIOError:
            raise SocketWouldBlockError("send would block") from None
        except OSError:
            raise SocketClosedRemote("connection closed by the peer") from None
        self._net.charge(self._peer, sent + OVERHEAD, OVERHEAD)
        return sent

    def recv(self, bytes_: object) -> bytes:
        """Return up to ``n`` bytes that have arrived."""
        if type(bytes_) is not int or bytes_ <= 0:
            raise RepyArgumentError("recv needs an int > 0")
        sock = self._live()
        try:
            data = sock.recv(min(bytes_, 1 << 20))
        except BlockingIOError:
            raise SocketWouldBlockError("no data yet") from None
        except OSError:
            raise SocketClosedRemote("connection closed by the peer") from None
        if not data:
            raise SocketClosedRemote("connection closed by the peer")
        self._net.charge(self._peer, OVERHEAD, len(data) + OVERHEAD)
        return data

    def close(self) -> bool:
        if self._sock is None:
            return False
        self._sock.close()
        self._sock = None
        self._net.nanny.remove_item("outsockets")
        return True


class _Listener:
    """A bound listening socket of one vessel; ``close`` frees its ``insockets`` item."""

    __slots__ = ("_local", "_net", "_sock")
    _proto = ""

    def __init__(self, net: VesselNet, sock: socket.socket, local: tuple[str, int]) -> None:
        self._net = net
        self._sock: socket.socket | None = sock
        self._local = local

    def close(self) -> bool:
        if self._sock is None:
            return False
        self._sock.close()
        self._sock = None
        self._net.stopped_listening((self._proto, *self._local))
        return True


class TCPServerSocket(_Listener):
    """A TCP listener: ``getconnection`` and ``close``."""

    __slots__ = ()
    _proto = "tcp"

    def getconnection(self) -> tuple[str, int, RepySocket]:
        if self._sock is None:
            raise TCPServerSocketInvalidError("listener is closed")
        try:
            conn, (ip, port) = self._sock.accept()
        except BlockingIOError:
            raise SocketWouldBlockError("no connection waiting") from None
        try:
            self._net.nanny.add_item("outsockets")
        except BaseException:
            conn.close()
            raise
        conn.setblocking(False)
        return ip, port, RepySocket(self._net, conn, ip)


class UDPServerSocket(_Listener):
    """A UDP listener: ``getmessage`` and ``close``."""

    __slots__ = ()
    _proto = "udp"

    def getmessage(self) -> tuple[str, int, bytes]:
        if self._sock is None:
            raise SocketClosedLocal("listener is closed")
        try:
            data, (ip, port) = self._sock.recvfrom(MAX_DATAGRAM + 1)
        except BlockingIOError:
            raise SocketWouldBlockError("no message waiting") from None
        self._net.charge(ip, 0, len(data) + OVERHEAD)
        return ip, port, data
