"""The relay service and relay client in one process, over real loopback sockets."""

from __future__ import annotations

import pytest
import trio

from nodemanager.errors import ConnectionFailed
from nodemanager.nat.dial import Route, dial
from nodemanager.nat.relay import RelayServer
from nodemanager.nat.relaycore import RelayLimits
from seattlecore import KeyPair
from tests.support.polling import eventually
from tests.support.relay_servers import echo_once, private_node, running_relay, wait_held


def route_to(client_keys: KeyPair, *relays: str) -> Route:
    return Route("127.99.0.1", 9, client_keys.public, tuple(relays))


async def test_a_client_reaches_a_private_node_through_its_relay() -> None:
    async with running_relay() as (relay, address), private_node([address]) as (node, echo):
        await wait_held(node, 1)
        dialed = await dial(route_to(node.keys, address), timeout=5)
        async with dialed.stream:
            assert dialed.path == f"relay {address}"
            assert await echo_once(dialed.stream, b"signed request bytes") == b"signed request bytes"
        assert echo.sources == ["127.0.0.1"]  # the client's address, as the relay claims it
        status = relay.status()
        assert status["reservations"] == 1
        assert status["counters"]["circuits_opened"] == 1  # type: ignore[index]


async def test_no_splice_to_a_node_without_a_reservation() -> None:
    async with running_relay() as (relay, address):
        with pytest.raises(ConnectionFailed, match="NoReservation"):
            await dial(route_to(KeyPair.generate(), address), timeout=5)
        assert relay.table.counters.refused_circuits == 1


async def test_at_capacity_new_reservations_are_refused_and_old_ones_keep_working() -> None:
    limits = RelayLimits(max_reservations=2)
    async with running_relay(limits) as (relay, address), \
            private_node([address]) as (first, _), private_node([address]) as (second, _):
        await wait_held(first, 1)
        await wait_held(second, 1)
        async with private_node([address]) as (third, _):
            # it retries; still refused
            await eventually(lambda: relay.table.counters.refused_reservations >= 2, timeout=5, interval=0.05)
            assert not third.held
        for node in (first, second):
            dialed = await dial(route_to(node.keys, address), timeout=5)
            async with dialed.stream:
                assert await echo_once(dialed.stream, b"still served") == b"still served"
        assert relay.status()["reservations"] == 2


async def test_a_relayed_connection_is_cut_at_its_byte_cap() -> None:
    limits = RelayLimits(circuit_bytes=100_000)
    async with running_relay(limits) as (relay, address), private_node([address]) as (node, _):
        await wait_held(node, 1)
        dialed = await dial(route_to(node.keys, address), timeout=5)
        received = 0
        async with dialed.stream:
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    async def send() -> None:
                        try:
                            for _ in range(40):
                                await dialed.stream.send_all(b"x" * 10_000)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            pass
                    nursery.start_soon(send)
                    try:
                        while chunk := await dialed.stream.receive_some(65536):
                            received += len(chunk)
                    except trio.BrokenResourceError:  # cut with bytes unread: a reset
                        pass
        assert received <= 100_000
        assert relay.table.counters.circuits_closed_bytes == 1
        # the relay's side of the close may finish a moment later
        await eventually(lambda: not relay.table.circuits, timeout=5, interval=0.01)


async def test_an_idle_relayed_connection_is_closed() -> None:
    limits = RelayLimits(circuit_idle=0.3)
    async with running_relay(limits) as (relay, address), private_node([address]) as (node, _):
        await wait_held(node, 1)
        dialed = await dial(route_to(node.keys, address), timeout=5)
        async with dialed.stream:
            assert await echo_once(dialed.stream, b"ping") == b"ping"
            with trio.fail_after(5):
                assert await dialed.stream.receive_some(100) == b""
        assert relay.table.counters.circuits_closed_idle == 1


async def test_a_node_replaces_a_relay_that_goes_away() -> None:
    async with running_relay() as (_, kept), trio.open_nursery() as nursery:
        scope = trio.CancelScope()
        doomed_relay = RelayServer(KeyPair.generate())

        async def run_doomed(task_status: trio.TaskStatus[int]) -> None:
            with scope:
                await doomed_relay.serve("127.0.0.1", 0, task_status=task_status)

        doomed = f"127.0.0.1:{await nursery.start(run_doomed)}"
        async with private_node([doomed, kept], want=1) as (node, _):
            await wait_held(node, 1)
            assert list(node.held) == [doomed]
            scope.cancel()  # the relay's sockets close, as when its process is killed
            await eventually(lambda: list(node.held) == [kept], timeout=10, interval=0.02)
            assert node.replacements == 1
            dialed = await dial(route_to(node.keys, doomed, kept), timeout=5)
            async with dialed.stream:
                assert dialed.path == f"relay {kept}"
                assert await echo_once(dialed.stream, b"moved") == b"moved"


async def test_the_upgrade_hook_sees_the_relayed_stream_and_may_replace_it() -> None:
    from nodemanager.nat.dial import Dialed

    seen: list[str] = []

    async def upgrade(dialed: Dialed, route: Route) -> Dialed:
        seen.append(dialed.path)
        assert await echo_once(dialed.stream, b"over the relay") == b"over the relay"
        return dialed  # a failed upgrade keeps the relayed stream

    async with running_relay() as (_, address), private_node([address]) as (node, _):
        await wait_held(node, 1)
        dialed = await dial(route_to(node.keys, address), timeout=5, upgrade=upgrade)
        async with dialed.stream:
            assert seen == [f"relay {address}"] and dialed.path == f"relay {address}"
            assert await echo_once(dialed.stream, b"after") == b"after"


async def test_a_reservation_is_cut_at_its_byte_budget_across_connections() -> None:
    """``reservation_bytes`` caps what all relayed connections of one node carry together."""
    limits = RelayLimits(reservation_bytes=150_000)
    async with running_relay(limits) as (relay, address), private_node([address]) as (node, _):
        await wait_held(node, 1)
        first = await dial(route_to(node.keys, address), timeout=5)
        async with first.stream:  # 60 KB each way: 120 KB of the budget
            assert await echo_once(first.stream, b"a" * 60_000) == b"a" * 60_000
        second = await dial(route_to(node.keys, address), timeout=5)
        async with second.stream:
            try:
                got = await echo_once(second.stream, b"b" * 60_000)
            except trio.BrokenResourceError:  # cut with bytes unread: a reset
                got = b""
        assert len(got) < 60_000
        assert relay.table.counters.circuits_closed_budget == 1
        with pytest.raises(ConnectionFailed, match="DataLimit"):
            await dial(route_to(node.keys, address), timeout=5)
        assert relay.status()["counters"]["refused_circuits"] >= 1  # type: ignore[index]
