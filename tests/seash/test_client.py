"""client.py: fan-out against a real node manager and a silent node."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from nodemanager import NodeClient
from seash.client import Job, NodePool, PoolStats, fan_out
from seash.discovery import node_info_op
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


async def test_a_nodes_vessels_share_one_signed_batch(tmp_path: Path) -> None:
    """Four vessels' calls reach the node as one signed request per round (revision 7);
    a vessel the node lacks fails alone."""
    import sqlite3

    from tests.support.seash import init_node

    state = tmp_path / "nm"
    init_node(state, OWNER.public.to_text(), vessels=4)

    def nonces() -> int:  # one per signed request the node accepted
        with sqlite3.connect(state / "state.sqlite") as db:
            return int(db.execute("SELECT count(*) FROM nonces").fetchone()[0])

    async with node_manager(state, dht=False) as nm:
        jobs = [Job(f"%{i}", "127.0.0.1", nm.port, f"v{i}") for i in (1, 2, 3, 4, 9)]
        pool = NodePool()

        async def upload(client: NodeClient, job: Job) -> list[str]:
            await client.add_file(job.vessel, "f.txt", job.vessel.encode())
            return await client.list_files(job.vessel)

        before = nonces()
        results = await fan_out(pool, jobs, upload, identity=OWNER,
                                limiter=trio.CapacityLimiter(8), timeout=5.0)
        assert [r.value for r in results[:4]] == [["f.txt"]] * 4
        assert results[4].status == "failed" and "no such vessel" in (results[4].error or "")
        # learning the node key (unsigned GetVessels), then two batches: add, then list
        assert nonces() - before == 2
        await pool.aclose()


async def test_a_node_wide_op_asks_each_node_once(tmp_path: Path) -> None:
    """``list``'s op (one GetVessels per node): one call for all of a node's vessels, the
    node's key learned by it; a vessel the node lacks fails alone; the vessels of a node
    that refuses connections, or of one that never answers, fail together."""
    import sqlite3

    from tests.support.seash import init_node

    state = tmp_path / "nm"
    init_node(state, OWNER.public.to_text(), vessels=4)

    def nonces() -> int:
        with sqlite3.connect(state / "state.sqlite") as db:
            return int(db.execute("SELECT count(*) FROM nonces").fetchone()[0])

    silent = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    silent_port = silent.socket.getsockname()[1]
    async with silent, node_manager(state, dht=False) as nm:
        jobs = [Job(f"%{i}", "127.0.0.1", nm.port, f"v{i}") for i in (1, 2, 3, 4, 9)]
        jobs += [Job("%20", "127.0.0.1", 9, "v1"), Job("%21", "127.0.0.1", 9, "v2")]
        jobs += [Job("%30", "127.0.0.1", silent_port, "v1"), Job("%31", "127.0.0.1", silent_port, "v2")]
        pool = NodePool()
        before = nonces()
        results = await fan_out(pool, jobs, node_info_op(), identity=OWNER,
                                limiter=trio.CapacityLimiter(8), timeout=1.0)
        assert [r.status for r in results] == ["ok"] * 4 + ["failed"] * 3 + ["timeout"] * 2
        assert [r.value.name for r in results[:4]] == ["v1", "v2", "v3", "v4"]
        assert "no such vessel" in (results[4].error or "")
        assert all((r.error or "").startswith("node unreachable") for r in results[5:7])
        client = await pool.client(("127.0.0.1", nm.port), OWNER, None, 1.0)
        assert client.statistics().calls == 1 and nonces() == before  # unsigned: key learned
        assert pool.statistics().open == 1  # the silent node's connection was dropped
        again = await fan_out(pool, jobs[:4], node_info_op(), identity=OWNER,
                              limiter=trio.CapacityLimiter(8), timeout=1.0)
        assert all(r.ok for r in again)
        assert client.statistics().calls == 2 and nonces() == before + 1  # one signed call
        await pool.aclose()
