"""Pure handler tests: authorization matrix, owner calls, split/join conservation."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodemanager import errors
from nodemanager.node import api
from nodemanager.node.model import Live, NodeView, Reannounce, Vessel
from nodemanager.node.state import NodeState
from nodemanager.proto import messages as m
from nodemanager.proto.auth import Verified
from sandbox import DEFAULT_OFFCUT, ResourceTable, total
from seattlecore import KeyPair
from tests.support.worlds import SMALL

OWNER, USER, STRANGER, NODE = (KeyPair.generate() for _ in range(4))
NOW = 1000.0


def view(vessels: dict[str, Vessel] | None = None, live: dict[str, Live] | None = None,
         held: int = 2, next_index: int = 3) -> NodeView:
    if vessels is None:
        vessels = {f"v{i}": Vessel(name=f"v{i}", owner=OWNER.public, users=(USER.public,),
                                   resources=SMALL) for i in (1, 2)}
    return NodeView(node=NODE.public, version="test", vessels=vessels, live=live or {},
                    offcut=DEFAULT_OFFCUT, offcuts_held=held, next_index=next_index,
                    started_at=0.0)


def call(request: m.Request, who: KeyPair | None, v: NodeView | None = None) -> api.Outcome:
    verified = Verified(request=request, requester=None if who is None else who.public,
                        nonce=os.urandom(16), timestamp=NOW)
    return api.handle(verified, v or view(), NOW)


PUBLIC = [m.GetVessels(), m.GetVesselResources(vessel="v1"), m.GetOffcutResources(),
          m.GetNodeStatus()]
USER_CALLS = [m.StartVessel(vessel="v1", program="a.py"), m.ResetVessel(vessel="v1"),
              m.AddFileToVessel(vessel="v1", filename="a", data=b""),
              m.RetrieveFileFromVessel(vessel="v1", filename="a"),
              m.ListFilesInVessel(vessel="v1"), m.DeleteFileInVessel(vessel="v1", filename="a"),
              m.ReadVesselLog(vessel="v1")]
OWNER_CALLS = [m.ChangeOwner(vessel="v1", owner=USER.public),
               m.ChangeUsers(vessel="v1", users=()),
               m.ChangeOwnerInformation(vessel="v1", info="x"),
               m.ChangeAdvertise(vessel="v1", advertise=False),
               m.SplitVessel(vessel="v1", resources="resource cpu 0.01\nresource memory 1\n"
                                                    "resource diskused 1\n"),
               m.JoinVessels(vessel1="v1", vessel2="v2")]


@pytest.mark.parametrize("request_", PUBLIC + USER_CALLS + OWNER_CALLS, ids=lambda r: r.op)
@pytest.mark.parametrize("who", ["owner", "user", "stranger", "anonymous"])
def test_rights_matrix(request_: m.Request, who: str) -> None:
    key = {"owner": OWNER, "user": USER, "stranger": STRANGER, "anonymous": None}[who]
    allowed = (request_.right == "public" or who == "owner"
               or (request_.right == "user" and who == "user"))
    if allowed:
        call(request_, key)
    else:
        with pytest.raises(errors.Forbidden):
            call(request_, key)


def test_unknown_vessel() -> None:
    with pytest.raises(errors.NoSuchVessel):
        call(m.GetVesselResources(vessel="v9"), None)


def test_change_owner_clears_info_and_sets_advertise() -> None:
    vessels = {"v1": Vessel(name="v1", owner=OWNER.public, owner_info="mine", advertise=False,
                            resources=SMALL)}
    outcome = call(m.ChangeOwner(vessel="v1", owner=USER.public), OWNER, view(vessels))
    assert outcome.change is not None
    (new,) = outcome.change.put
    assert (new.owner, new.owner_info, new.advertise) == (USER.public, "", True)
    assert Reannounce() in outcome.effects


def test_start_and_split_refused_while_running() -> None:
    running = view(live={"v1": Live(status="Started")})
    with pytest.raises(errors.VesselBusy):
        call(m.StartVessel(vessel="v1", program="a.py"), USER, running)
    with pytest.raises(errors.VesselBusy):
        call(OWNER_CALLS[4], OWNER, running)
    with pytest.raises(errors.VesselNotRunning):
        call(m.StopVessel(vessel="v1"), USER)


def test_join_needs_the_same_owner() -> None:
    vessels = {"v1": Vessel(name="v1", owner=OWNER.public, resources=SMALL),
               "v2": Vessel(name="v2", owner=USER.public, resources=SMALL)}
    with pytest.raises(errors.Forbidden):
        call(m.JoinVessels(vessel1="v1", vessel2="v2"), OWNER, view(vessels))


def test_split_too_large() -> None:
    with pytest.raises(errors.BadResources):
        call(m.SplitVessel(vessel="v1", resources=SMALL.to_text()), OWNER)
    with pytest.raises(errors.BadResources):
        call(m.SplitVessel(vessel="v1", resources="resource cpu x\n"), OWNER)


def node_total(state: NodeState) -> ResourceTable:
    return total([*[v.resources for v in state.vessels.values()],
                  *[state.offcut] * state.offcuts_held])


def piece(table: ResourceTable, share: float, keep_ports: bool) -> ResourceTable:
    values = {k: max(0.0, v - DEFAULT_OFFCUT.values[k]) * share for k, v in table.values.items()}
    ports = (table.messport, table.connport) if keep_ports else (frozenset(), frozenset())
    return ResourceTable(values, *ports)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("split"), st.integers(0, 20), st.floats(0.0, 1.2), st.booleans()),
        st.tuples(st.just("join"), st.integers(0, 20), st.integers(0, 20)),
        st.tuples(st.just("restart")),
    ),
    max_size=12,
)


def apply(state: NodeState, op: tuple[object, ...]) -> None:
    names = sorted(state.vessels)
    v = NodeView(node=NODE.public, version="t", vessels=dict(state.vessels), live={},
                 offcut=state.offcut, offcuts_held=state.offcuts_held,
                 next_index=state.next_index, started_at=0.0)
    if op[0] == "split":
        name = names[int(op[1]) % len(names)]  # type: ignore[call-overload]
        wanted = piece(state.vessels[name].resources, float(op[2]), bool(op[3]))  # type: ignore[arg-type]
        request: m.Request = m.SplitVessel(vessel=name, resources=wanted.to_text())
    else:
        request = m.JoinVessels(vessel1=names[int(op[1]) % len(names)],  # type: ignore[call-overload]
                                vessel2=names[int(op[2]) % len(names)])  # type: ignore[call-overload]
    verified = Verified(request=request, requester=OWNER.public, nonce=os.urandom(16),
                        timestamp=NOW)
    try:
        outcome = api.handle(verified, v, NOW)
    except (errors.BadResources, errors.BadArguments):
        return
    state.commit(outcome.change, nonce=verified.nonce, ts=NOW)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_split_join_conserve_resources(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.sqlite"
        state = NodeState(path)
        vessels = {f"v{i}": Vessel(name=f"v{i}", owner=OWNER.public, resources=SMALL)
                   for i in (1, 2)}
        state.initialize(vessels, offcut=DEFAULT_OFFCUT, next_index=3, offcuts_held=2)
        before = node_total(state)
        for op in ops:
            if op[0] == "restart":
                state.close()
                state = NodeState(path)
            else:
                apply(state, op)
            assert node_total(state) == before
            assert state.offcuts_held == len(state.vessels)
        state.close()
        assert node_total(NodeState(path)) == before


def test_get_vessels_reports_the_program_and_its_arguments() -> None:
    shown = dataclasses.replace(view(), programs={"v2": ("loop.py", ("slow", "1"))})
    vessels = call(m.GetVessels(), None, shown).result["vessels"]
    assert [(v["program"], v["args"]) for v in vessels] == [(None, []), ("loop.py", ["slow", "1"])]
