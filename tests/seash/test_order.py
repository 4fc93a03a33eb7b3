"""Per-vessel output comes in ``%N`` order, whatever order the nodes answer in."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from seash.client import Job, Node, NodePool, NodeResult
from seash.executor import Executor, InOrder, Summary
from seash.session import Identity, Session, VesselRef
from seash.tree import TREE
from seattlecore import KeyPair, PublicKey

ALICE = KeyPair.generate()


def result(target: str) -> NodeResult:
    return NodeResult(target, target, "ok", value=target)


def test_in_order_releases_each_result_once_all_before_it_arrived() -> None:
    order = InOrder(["%1", "%2", "%3", "%4"])
    assert order.arrived("%3", result("%3")) == []
    assert order.arrived("%2", result("%2")) == []
    assert [r.target for r in order.arrived("%1", result("%1"))] == ["%1", "%2", "%3"]
    assert [r.target for r in order.arrived("%9", result("%9"))] == ["%9"]  # unknown: at once
    assert [r.target for r in order.arrived("%4", result("%4"))] == ["%4"]
    assert order.rest() == []


def test_in_order_rest_keeps_the_order_behind_a_missing_result() -> None:
    order = InOrder(["%1", "%2", "%3"])
    order.arrived("%3", result("%3"))
    order.arrived("%2", result("%2"))
    assert [r.target for r in order.rest()] == ["%2", "%3"]


class Recorder:
    """A reporter that keeps the order of per-vessel lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def begin(self, line: str) -> None: ...
    def text(self, text: str) -> None: ...
    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None: ...
    def start(self, command: str, total: int) -> None: ...

    def result(self, result: NodeResult, text: str | None) -> None:
        self.lines.append(f"{result.target} {text}")

    def finish(self, summary: Summary) -> None: ...
    def error(self, message: str) -> None: ...
    def end(self, ok: bool) -> None: ...


class Stub:
    """What a batched fan-out reads of a node's client (nodemanager/proto/batch.py)."""

    timeout = 0.0
    path = "direct"
    identity = None
    node_key = None
    _clock = staticmethod(time.time)


class AnyPool(NodePool):
    """A pool whose clients are stubs: the op below never talks to a node."""

    async def client(self, node: Node, identity: KeyPair | None, node_key: PublicKey | None,
                     timeout: float) -> Any:
        return Stub()


async def test_fan_reports_in_vessel_order_when_nodes_answer_out_of_order(tmp_path: Path) -> None:
    session = Session()
    session.add_identity(Identity("alice", ALICE.public, ALICE))
    for node in range(5):
        for vessel in ("v1", "v2"):
            session.add_vessel(VesselRef(f"127.0.0.{node + 1}", 1000, vessel))
    session.groups["mixed"] = [7, 2, 9, 1]
    delays = dict(zip(range(1, 11), random.Random(20).sample(range(10), 10), strict=True))

    async def op(client: Any, job: Job) -> str:
        await trio.sleep(delays[int(job.target[1:])] / 100)
        return job.vessel

    reporter = Recorder()
    ex = Executor(TREE, session, reporter, home=tmp_path, pool=AnyPool())
    results = await ex.fan("list", op, str)
    finished = sorted(range(1, 11), key=lambda n: delays[n])
    assert finished != list(range(1, 11))  # the nodes did answer out of order
    assert [line.split()[0] for line in reporter.lines] == [f"%{n}" for n in range(1, 11)]
    assert [r.target for r in results] == [f"%{n}" for n in range(1, 11)]
    session.target = "mixed"
    reporter.lines.clear()
    await ex.fan("list", op, str)
    assert [line.split()[0] for line in reporter.lines] == ["%1", "%2", "%7", "%9"]
