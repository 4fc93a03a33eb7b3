"""Repy's network API (``repy_v2/emulcomm.py``): mediated TCP and UDP for one vessel.

Checks run in Seattle's order, so programs see the same exception Seattle raised:
argument types, then argument values (IPs must be dotted quads whose first octet is 1-223;
ports 1-65535; a local address equal to the destination is refused), then the port grant
(``ResourceForbiddenError``), then the local IP (only loopback and the node's own IP bind:
``AddressBindingError``), then clashes with the vessel's own sockets
(``AlreadyListeningError``, ``DuplicateTupleError``). Sockets are non-blocking: a call that
would block raises ``SocketWouldBlockError``. Charges: ``loopsend``/``looprecv`` for
loopback peers, ``netsend``/``netrecv`` otherwise, with Seattle's per-packet overhead
(``netsockets.PACKET_OVERHEAD``). ``VesselNet`` is the ``SocketAccounting`` its sockets use.
"""

from __future__ import annotations

import errno
import socket
import threading
from typing import cast

from sandbox.repy import (
    AddressBindingError,
    AlreadyListeningError,
    CleanupInProgressError,
    DuplicateTupleError,
    InternetConnectivityError,
    NetworkAddressError,
    RepyArgumentError,
    RepyConnectionRefusedError,
    RepyTimeoutError,
)
from sandbox.vessel.nanny import Nanny
from sandbox.vessel.netsockets import (
    CONNECT,
    PACKET_OVERHEAD,
    Charge,
    Identity,
    ListenKey,
    RepySocket,
    TCPServerSocket,
    UDPServerSocket,
    is_loopback,
)

SOCKET_BUFFER = 128 * 1024
"""Fixed TCP buffers (the kernel doubles them). Autotuned loopback buffers grow to megabytes,
so a 1 MiB send would never block as Seattle's tests expect; fixed ones also bound the
kernel memory one vessel's sockets can pin. Vessel rates are far below what they carry."""
MAX_DATAGRAM = 9216
"""Seattle capped datagrams at macOS's limit on every platform (``udp_test_datagram_sizes``)."""
DNS_LOOKUP: Charge = (1024, 4096)
"""A name lookup, whose real traffic the vessel cannot see: Seattle's flat guess, charged to
the network (not loopback) rates."""
NO_PEER = "0.0.0.0"
"""The peer a DNS lookup is charged to: not loopback, so it counts as ``netsend``/``netrecv``."""

Local = tuple[str, int]


def valid_ip(value: str) -> bool:
    """Seattle's ``_is_valid_ip_address``: four octets 0-255, the first 1-223."""
    octets = value.split(".")
    if len(octets) != 4 or not all(o.isdigit() and o.isascii() and len(o) <= 3 for o in octets):
        return False
    numbers = [int(o) for o in octets]
    return all(n <= 255 for n in numbers) and 0 < numbers[0] < 224


def check_types(**values: tuple[object, tuple[type, ...]]) -> None:
    """Exact type checks, in argument order (Seattle checks every type before any value)."""
    for name, (value, kinds) in values.items():
        if type(value) not in kinds:
            raise RepyArgumentError(f"{name} must be {' or '.join(k.__name__ for k in kinds)}")


def addresses(
    destip: object, destport: object, localip: object, localport: object,
    **more: tuple[object, tuple[type, ...]],
) -> tuple[str, int, str, int]:
    """Seattle's argument checks for a remote and a local address: every type (with
    ``more``), then the values."""
    check_types(destip=(destip, (str,)), localip=(localip, (str,)), destport=(destport, (int,)),
                localport=(localport, (int,)), **more)
    dest, dport, local, lport = cast(str, destip), cast(int, destport), cast(str, localip), cast(
        int, localport)
    check_ip(dest, "destip")
    check_ip(local, "localip")
    check_port(dport, "destport")
    check_port(lport, "localport")
    return dest, dport, local, lport


def check_ip(value: str, what: str) -> None:
    if not valid_ip(value):
        raise RepyArgumentError(f"{what} {value[:60]!r} is not a valid IPv4 address")


def check_port(value: int, what: str) -> None:
    if not 0 < value < 65536:
        raise RepyArgumentError(f"{what} must be in 1..65535")


class VesselNet:
    """Socket factory of one vessel: its nanny, its allowed local IPs, its live sockets.

    It is the ``SocketAccounting`` of the sockets it makes; they reach the nanny only
    through it."""

    def __init__(self, nanny: Nanny, my_ip: str) -> None:
        self.nanny = nanny
        self.my_ip = my_ip
        self._lock = threading.RLock()
        self.listening: dict[tuple[str, str, int], socket.socket] = {}
        self.connections: set[Identity] = set()

    def charge(self, peer: str, sent: int, received: int) -> None:
        prefix = "loop" if is_loopback(peer) else "net"
        if sent:
            self.nanny.charge(prefix + "send", sent)
        if received:
            self.nanny.charge(prefix + "recv", received)

    def wait(self, peer: str, *directions: str) -> None:
        """Block while the peer's rates are over budget (Seattle's zero charge)."""
        prefix = "loop" if is_loopback(peer) else "net"
        for direction in directions:
            self.nanny.wait(prefix + direction)

    def _permit(self, kind: str, localip: str, localport: int) -> None:
        """The grant, then the local IP: Seattle's permission checks, in its order."""
        self.nanny.check_port(kind, localport)
        if not is_loopback(localip) and localip != self.my_ip:
            raise AddressBindingError(f"cannot bind {localip}: not an address of this node")

    def openconnection(
        self, destip: object, destport: object, localip: object, localport: object, timeout: object
    ) -> RepySocket:
        destip, destport, localip, localport = addresses(
            destip, destport, localip, localport, timeout=(timeout, (int, float)))
        if not 0 < timeout <= 3600:  # type: ignore[operator]
            raise RepyArgumentError("timeout must be a number in (0, 3600]")
        if (localip, localport) == (destip, destport):
            raise RepyArgumentError("the local address may not be the destination")
        self._permit("connport", localip, localport)
        identity = (localip, localport, destip, destport)
        self._check_clash("tcp", identity)
        self.wait(destip, "send", "recv")
        sock = self._connect(identity, float(timeout))  # type: ignore[arg-type]
        try:
            self.take_outsocket()
        except BaseException:
            sock.close()
            raise
        with self._lock:
            self.connections.add(identity)
        self.charge(destip, *CONNECT)
        return RepySocket(self, sock, destip, identity)

    def _check_clash(self, proto: str, identity: Identity) -> None:
        with self._lock:
            if (proto, identity[0], identity[1]) in self.listening:
                raise AlreadyListeningError(f"already listening on {identity[0]}:{identity[1]}")
            if proto == "tcp" and identity in self.connections:
                raise DuplicateTupleError("a connection with this local and remote address exists")

    def _connect(self, identity: Identity, timeout: float) -> socket.socket:
        localip, localport, destip, destport = identity
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            fix_buffers(sock)
            sock.bind((localip, localport))
            sock.settimeout(timeout)
            sock.connect((destip, destport))
        except OSError as exc:
            sock.close()
            raise translate_connect(exc) from None
        sock.setblocking(False)
        return sock

    def take_outsocket(self) -> None:
        self.nanny.add_item("outsockets")

    def connection_closed(self, identity: Identity) -> None:
        with self._lock:
            self.connections.discard(identity)
        self.nanny.remove_item("outsockets")

    def listenforconnection(self, localip: object, localport: object) -> TCPServerSocket:
        local = self._listen_args(localip, localport, "connport")
        sock = self._listen_socket("tcp", socket.SOCK_STREAM, local)
        sock.listen(max(1, min(int(self.nanny.table["outsockets"]) or 5, 128)))
        return TCPServerSocket(self, sock, local)

    def listenformessage(self, localip: object, localport: object) -> UDPServerSocket:
        local = self._listen_args(localip, localport, "messport")
        sock = self._listen_socket("udp", socket.SOCK_DGRAM, local)
        return UDPServerSocket(self, sock, local)

    def _listen_args(self, localip: object, localport: object, kind: str) -> Local:
        check_types(localip=(localip, (str,)), localport=(localport, (int,)))
        ip, port = cast(str, localip), cast(int, localport)
        check_ip(ip, "localip")
        check_port(port, "localport")
        self._permit(kind, ip, port)
        return ip, port

    def _listen_socket(self, proto: str, kind: int, local: Local) -> socket.socket:
        key = (proto, *local)
        with self._lock:
            if key in self.listening:
                raise AlreadyListeningError(f"already listening on {local[0]}:{local[1]}")
            sock = socket.socket(socket.AF_INET, kind)
            try:
                if proto == "tcp":
                    fix_buffers(sock)
                sock.bind(local)
                self.nanny.add_item("insockets")
            except OSError as exc:
                sock.close()
                raise translate_bind(exc, local, in_use=AlreadyListeningError) from None
            except BaseException:
                sock.close()
                raise
            sock.setblocking(False)
            self.listening[key] = sock
        return sock

    def stopped_listening(self, key: ListenKey) -> None:
        with self._lock:
            self.listening.pop(key, None)
        self.nanny.remove_item("insockets")

    def sendmessage(
        self, destip: object, destport: object, message: object, localip: object, localport: object
    ) -> int:
        destip, destport, localip, localport = addresses(
            destip, destport, localip, localport, message=(message, (str, bytes)))
        data = message.encode("utf-8") if isinstance(message, str) else cast(bytes, message)
        if len(data) > MAX_DATAGRAM:
            raise RepyArgumentError(f"messages are at most {MAX_DATAGRAM} bytes")
        if (localip, localport) == (destip, destport):
            raise RepyArgumentError("the local address may not be the destination")
        self._permit("messport", localip, localport)
        self.wait(destip, "send")
        sent = self._send_datagram(data, (localip, localport), (destip, destport))
        self.charge(destip, sent + PACKET_OVERHEAD, 0)
        return sent

    def _send_datagram(self, data: bytes, local: Local, dest: Local) -> int:
        """Send through the vessel's listener on ``local`` if there is one, as Seattle did."""
        with self._lock:
            listener = self.listening.get(("udp", *local))
            if listener is not None:
                return _sendto(listener, data, dest)
        self.nanny.add_item("outsockets")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(local)
            return _sendto(sock, data, dest)
        except OSError as exc:
            raise translate_bind(exc, local) from None
        finally:
            sock.close()
            self.nanny.remove_item("outsockets")

    def gethostbyname(self, name: object) -> str:
        if type(name) is not str or not 0 < len(name) <= 253:
            raise RepyArgumentError("name must be a non-empty str of at most 253 characters")
        self.charge(NO_PEER, *DNS_LOOKUP)
        try:
            return socket.gethostbyname(name)
        except (OSError, UnicodeError):
            raise NetworkAddressError(f"cannot resolve {name!r}") from None


def fix_buffers(sock: socket.socket) -> None:
    """Reusable address and fixed buffers for a TCP socket (accepted ones inherit them)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)


def _sendto(sock: socket.socket, data: bytes, dest: Local) -> int:
    try:
        return sock.sendto(data, dest)
    except BlockingIOError:
        return 0  # a full socket buffer drops the datagram, as UDP may


def translate_bind(
    exc: OSError, local: Local, in_use: type[Exception] = DuplicateTupleError
) -> Exception:
    """Map a bind/send error to Repy's exception."""
    if exc.errno == errno.EADDRINUSE:
        return in_use(f"{local[0]}:{local[1]} is in use by another socket")
    if exc.errno == errno.EADDRNOTAVAIL:
        return AddressBindingError(f"cannot bind {local[0]}: not an address of this node")
    return AddressBindingError(f"cannot use {local[0]}:{local[1]}: {exc.strerror}")


def translate_connect(exc: OSError) -> Exception:
    """Map a connect error to Repy's exception (Seattle's ``_timed_conn_initialize``)."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return RepyTimeoutError("timed out connecting to the remote host")
    if exc.errno == errno.ECONNREFUSED:
        return RepyConnectionRefusedError("the connection was refused")
    if exc.errno in (errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH):
        return InternetConnectivityError("the network is down or unreachable from this address")
    if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
        return CleanupInProgressError("the local address is still being released; try again")
    return AddressBindingError(f"cannot connect: {exc.strerror}")
