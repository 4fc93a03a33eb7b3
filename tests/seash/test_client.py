"""client.py: fan-out against a real node manager and a silent node."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from nodemanager import NodeClient
from seash.client import Job, NodePool, PoolStats, fan_out
from seattlecore import KeyPair
from tests.support.daemons import node_manager

pytestmark = pytest.mark.slow

OWNER = KeyPair.generate()


async def test_one_connection_per_node_and_dead_nodes_do_not_hold_others(tmp_path: Path) -> None:
    from tests.support.seash import init_node

    state = tmp_path / "nm"
    init_node(state, OWNER.public.to_text(), vessels=4)
    silent = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    silent_port = silent.socket.getsockname()[1]
    async with silent, node_manager(state, dht=False) as nm:
        port = nm.port
        jobs = [Job(f"%{i}", "127.0.0.1", port, f"v{i}") for i in range(1, 5)]
        jobs += [Job("%9", "127.0.0.1", silent_port, "v1"), Job("%8", "127.0.0.1", 9, "v1")]
        arrived: list[tuple[str, float]] = []
        pool = NodePool()
        start = trio.current_time()

        async def op(client: NodeClient, job: Job) -> str:
            return (await client.get_vessels()).vessels[0].status

        results = await fan_out(pool, jobs, op, identity=OWNER, limiter=trio.CapacityLimiter(8),
                                timeout=1.0, on_result=lambda r: arrived.append(
                                    (r.target, trio.current_time() - start)))
        assert [r.status for r in results] == ["ok"] * 4 + ["timeout", "failed"]
        assert results[5].error is not None and results[5].error.startswith("node unreachable")
        assert max(t for target, t in arrived if target not in ("%9",)) < 0.9
        # one connection for the real node's 4 vessels, one to the silent node (dropped on timeout)
        assert pool.statistics() == PoolStats(open=1, opened=2)
        again = await fan_out(pool, jobs[:4], op, identity=OWNER, limiter=trio.CapacityLimiter(8),
                              timeout=1.0)
        assert all(r.ok for r in again) and pool.statistics() == PoolStats(open=1, opened=2)
        await pool.aclose()
