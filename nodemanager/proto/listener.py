"""TCP listening sockets that drain their accept queue in batches (trio shell).

``trio.serve_listeners`` accepts one connection per trip through the scheduler; while
hundreds of connections are busy, a trip takes long enough that the kernel's accept queue
fills and a newcomer (an owner among them) waits behind every hostile connect. Here each
time a listening socket becomes readable, up to ``ACCEPT_BATCH`` connections are accepted at
once, so admission control (``admission.py``) sees newcomers as fast as they arrive.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable

import trio

log = logging.getLogger(__name__)

ACCEPT_BATCH = 256
BACKLOG = 4096
RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
"""accept() failures that mean "out of something for now": pause, then try again."""
PEER_ERRNOS = {getattr(errno, name) for name in (
    "ECONNABORTED", "EPROTO", "EPERM", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET",
    "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH") if hasattr(errno, name)}
"""accept() failures caused by one connection (gone before it was accepted): skip it."""

Handler = Callable[[trio.SocketStream], Awaitable[None]]


def open_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address ``host`` resolves to."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            sock.listen(BACKLOG)
            sock.setblocking(False)
            port = sock.getsockname()[1]  # with port 0: the others take the first one's
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def accept_forever(sock: socket.socket, handler: Handler, nursery: trio.Nursery) -> None:
    """Accept connections on ``sock`` and run ``handler(stream)`` for each in ``nursery``."""
    while True:
        await trio.lowlevel.wait_readable(sock)
        for _ in range(ACCEPT_BATCH):
            try:
                accepted, _ = sock.accept()
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in PEER_ERRNOS:
                    continue
                if exc.errno not in RESOURCE_ERRNOS:
                    raise
                log.error("accept failed (%s); pausing for 100 ms", errno.errorcode[exc.errno])
                await trio.sleep(0.1)
                break
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(accepted))
            nursery.start_soon(handler, stream)
        await trio.lowlevel.checkpoint()


async def serve_tcp(
    handler: Handler, host: str, port: int, *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``host:port``; ``task_status.started(bound_port)``; serve until cancelled."""
    sockets = open_sockets(host, port)
    try:
        async with trio.open_nursery() as nursery:
            for sock in sockets:
                nursery.start_soon(accept_forever, sock, handler, nursery)
            task_status.started(sockets[0].getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
