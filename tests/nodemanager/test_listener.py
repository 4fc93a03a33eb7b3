"""The batched accept loop and the file-descriptor budget of the port."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from nodemanager.node.admission import PortLimits
from nodemanager.node.server import SPARE_FDS, fit_to_fd_limit, raise_fd_limit
from nodemanager.proto.listener import serve_tcp
from tests.support import attacker as a


@contextmanager
def soft_fd_limit(soft: int) -> Iterator[None]:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_connections_are_fitted_to_the_file_limit() -> None:
    limits = PortLimits(max_connections=2000, reserved_connections=300)
    with soft_fd_limit(600):
        fitted = fit_to_fd_limit(limits)
    assert fitted.max_connections == 600 - SPARE_FDS
    assert fitted.reserved_connections == (600 - SPARE_FDS) // 2
    small = PortLimits(max_connections=100, reserved_connections=10)
    assert fit_to_fd_limit(small) is small


def test_the_soft_file_limit_is_raised_up_to_the_hard_one() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with soft_fd_limit(256):
        raise_fd_limit(1000 + SPARE_FDS)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert soft == min(hard, 1000 + SPARE_FDS)


async def test_a_burst_of_connects_is_accepted_at_once(nursery: trio.Nursery) -> None:
    raise_fd_limit(4096)
    accepted: list[trio.SocketStream] = []
    everyone = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        if len(accepted) == 400:
            everyone.set()
        async with stream:
            await stream.send_all(b"hi")
            await trio.sleep_forever()

    port = await nursery.start(serve_tcp, handler, "127.0.0.1", 0)
    clients: list[trio.SocketStream] = []

    async def connect(source: str) -> None:
        clients.append(await a.connect(port, source))

    async with trio.open_nursery() as burst:
        for source in a.sources(400, first_octet=90):
            burst.start_soon(connect, source)
    with trio.fail_after(10):
        await everyone.wait()
    for client in clients:
        assert await client.receive_some(2) == b"hi"
        await client.aclose()
    peers = {stream.socket.getpeername()[0] for stream in accepted}
    assert len(peers) == 400


OUT_OF_FILES = """
import logging, os, resource, sys, trio
from nodemanager.proto.listener import serve_tcp
from tests.support.polling import eventually

class Seen(logging.Handler):
    text = ""
    def emit(self, record):
        Seen.text += record.getMessage()

async def handler(stream):
    async with stream:
        await stream.send_all(b"hi")
        await trio.sleep_forever()

async def main():
    logging.getLogger("nodemanager.proto.listener").addHandler(Seen())
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_tcp, handler, "127.0.0.1", 0)
        before = resource.getrlimit(resource.RLIMIT_NOFILE)
        room = len(os.listdir("/proc/self/fd")) + 4  # the listing counts its own fd
        resource.setrlimit(resource.RLIMIT_NOFILE, (room, before[1]))
        # 3 client ends + 2 accepted ends fill the room: the third accept has no file
        clients = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
        await eventually(lambda: "EMFILE" in Seen.text, timeout=5, interval=0.01)
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
        with trio.fail_after(5):  # files again: the waiting connection is served
            for client in clients:
                assert await client.receive_some(2) == b"hi"
        print("recovered")
        nursery.cancel_scope.cancel()

trio.run(main)
"""


def test_running_out_of_files_pauses_accepting_and_recovers() -> None:
    """In a process of its own, so that no other test's files disturb the count."""
    done = subprocess.run([sys.executable, "-c", OUT_OF_FILES], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "recovered", done.stderr[-2000:]
