"""The experiment API's pure parts (events, endings, the keep-running roster), loading
identities and saved groups, and the API against hostile node managers written for the
test (garbage answers, a lying length prefix, silence) beside a real one."""

from __future__ import annotations

import importlib.util
import json
import random
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import nacl.signing
import pytest
import trio

from nodemanager import VesselInfo
from seash.client import NodeResult
from seash.experiment import (
    BlockingExperiment,
    Experiment,
    ExperimentError,
    Roster,
    Seen,
    Vessel,
    changes,
    ending,
    load_group,
    load_identity,
)
from seash.session import Identity, Session, VesselRef
from seash.statefile import encrypt_state
from seattlecore import KeyPair, save_keypair
from tests.support.daemons import node_manager
from tests.support.net import closed_port
from tests.support.nodes import init_owned
from tests.support.worlds import OWNER

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
V = Vessel("127.0.0.1", 1234, "v1")


def info(status: str, *, code: int | None = None, reason: str | None = None,
         paused: str | None = None, program: str | None = "p.py") -> VesselInfo:
    return VesselInfo(name="v1", status=status, exit_reason=reason, exit_code=code,
                      advertise=True, owner=OWNER.public, owner_info="", users=(),
                      program=program, paused=paused)


def kinds(before: Seen | None, now: Seen) -> list[str]:
    return [e.kind for e in changes(V, before, now)]


def test_changes_between_observations() -> None:
    fresh, started = Seen(info("Fresh", program=None)), Seen(info("Started"))
    assert kinds(None, fresh) == []
    assert kinds(fresh, started) == ["started"]
    assert kinds(started, started) == []
    assert kinds(started, Seen(info("Started", paused="battery"))) == ["paused"]
    assert kinds(Seen(info("Started", paused="battery")), Seen(info("Started", paused="battery"))) == []
    assert kinds(started, Seen(info("Terminated", code=0))) == ["ended"]
    assert kinds(started, Seen(info("Stopped"))) == ["ended"]
    failed = changes(V, started, Seen(info("Terminated", code=1, reason="ValueError: boom")))
    assert [(e.kind, e.reason) for e in failed] == [("failed", "ValueError: boom")]
    assert kinds(fresh, Seen(info("Terminated", code=1))) == ["failed"]  # started and ended between
    gone = Seen(None, "node unreachable: refused")
    assert [(e.kind, e.reason) for e in changes(V, started, gone)] == [
        ("unreachable", "node unreachable: refused")]
    assert kinds(gone, gone) == []
    assert kinds(gone, started) == ["started"]
    assert kinds(Seen(info("Terminated", code=0)), Seen(info("Terminated", code=0))) == []
    assert kinds(None, started) == ["started"]


def result(value: Any, status: str = "ok", error: str | None = None) -> NodeResult:
    return NodeResult(V.address, V.address, status, value=value, error=error)  # type: ignore[arg-type]


def test_ending_says_how_each_program_ended() -> None:
    assert ending(result(info("Terminated", code=0))).value == "p.py: Terminated"
    bad = ending(result(info("Terminated", code=1, reason="ValueError: boom")))
    assert (bad.status, bad.error) == ("failed", "p.py failed: ValueError: boom")
    late = ending(result(info("Started")), 2.0)
    assert (late.status, late.error) == ("timeout", "p.py still runs after 2 s")
    assert ending(result(info("Started", paused="manual"))).status == "ok"
    assert ending(result(info("Fresh", program=None))).value == "nothing started"
    down = result(None, "failed", "node unreachable")
    assert ending(down) is down


def test_roster_replaces_and_never_reuses_a_retired_vessel() -> None:
    rng = random.Random(23)
    vessels = [Vessel("127.0.0.1", 1000 + i, "v1") for i in range(5)]
    rng.shuffle(vessels)
    roster = Roster(2, list(vessels[:3]))
    for vessel in roster.take():
        roster.started(vessel)
    assert roster.missing == 0 and len(roster.spares) == 1
    roster.retire(roster.active[0], "unreachable: gone")
    assert roster.missing == 1 and roster.take() == [vessels[2]]
    roster.started(vessels[2])
    roster.add_spares([vessels[0], vessels[3], vessels[3]])  # retired and duplicate: skipped
    assert roster.spares == [vessels[3]]
    assert roster.retired == {vessels[0].address: "unreachable: gone"}


def test_load_identity_and_groups(tmp_path: Path) -> None:
    keys = KeyPair.generate()
    save_keypair(tmp_path, "alice", keys)
    assert load_identity("alice", tmp_path).public == keys.public
    assert load_identity(tmp_path / "alice.privatekey").public == keys.public
    with pytest.raises(ExperimentError, match=r"cannot read .*bob\.privatekey"):
        load_identity("bob", tmp_path)
    (tmp_path / "junk.privatekey").write_text("not a key\n")
    with pytest.raises(ExperimentError, match=r"private key of junk: .*junk\.privatekey"):
        load_identity("junk", tmp_path)

    session = Session()
    session.add_identity(Identity("alice", keys.public, keys))
    ids = [session.add_vessel(VesselRef("127.0.0.1", 40000 + i, "v1")) for i in range(3)]
    session.set_group("probes", ids[1:])
    state = tmp_path / "s.state"
    state.write_bytes(encrypt_state(json.dumps(session.to_dict()).encode(), "pw",
                                    opslimit=1, memlimit=8192))
    assert [v.port for v in load_group(state, "pw", "probes")] == [40001, 40002]
    assert len(load_group(state, "pw")) == 3
    with pytest.raises(ExperimentError, match="no vessel or group named 'nope'"):
        load_group(state, "pw", "nope")
    with pytest.raises(ExperimentError, match="wrong passphrase"):
        load_group(state, "wrong", "probes")


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("allpairs", EXAMPLES / "allpairs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("allpairs", module)  # dataclasses look their module up
    spec.loader.exec_module(sys.modules["allpairs"])
    module = sys.modules["allpairs"]
    return module


def test_allpairs_reads_a_hostile_vessels_csv_without_failing() -> None:
    allpairs = load_example()
    hostile = ("a:1,5,5,1.5,1.0\nnot,a,row\na:2,x,1,1,1\na:3,1,1,nan,1\n"
               "a:4,1,1,1e99,1\n,,,,\n\x00\x00\n" + "a:5,1,0,,\n")
    assert allpairs.read_probe_csv(hostile) == {"a:1": (5, 5, 1.5, 1.0), "a:5": (1, 0, None, None)}
    pairs = allpairs.pairs_of(["a:1", "a:5", "a:9"], {"a:1": hostile, "a:9": "a:1,9,9,2,2\n"},
                              {"a:5": "node unreachable"})
    assert len(pairs) == 6
    by = {(p.source, p.destination): p for p in pairs}
    assert by[("a:5", "a:1")].status == "no results: node unreachable"
    assert by[("a:1", "a:9")].status == "not probed"
    assert by[("a:9", "a:1")].median_ms == 2.0


# ---- hostile node managers beside a real one ----

async def hostile_node(kind: str, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
                       ) -> None:
    """A "node manager" that reads each request frame and answers garbage (``garbage``),
    promises a 4 GiB frame and hangs up (``liar``), never answers (``silent``), or answers
    with a response signed by its own key for the request's nonce whose result is not what
    the operation returns (``malformed``: built by hand from docs/protocol.md §2 and §5)."""
    own = nacl.signing.SigningKey.generate()

    def signed_nonsense(request: bytes) -> bytes:
        body_bytes = msgpack.unpackb(request[4:], raw=False)[0]
        nonce = msgpack.unpackb(body_bytes, raw=False)["nonce"]
        node = bytes(own.verify_key)
        body = msgpack.packb({"v": 1, "node": node, "nonce": nonce, "ok": True, "error": None,
                              "result": {"version": "1", "node": node, "vessels": "v1 v2",
                                         "resources": 7, "files": {"a": 1}}})
        domain = b"seattle-nm-response-v1"
        signature = own.sign(domain + struct.pack(">Q", len(body)) + body).signature
        payload = msgpack.packb([body, bytes(signature)])
        return struct.pack(">I", len(payload)) + payload

    async def serve(stream: trio.SocketStream) -> None:
        async with stream:
            while request := await stream.receive_some(65536):
                if kind == "garbage":
                    payload = msgpack.packb([b"\xc1not msgpack", None])
                    await stream.send_all(struct.pack(">I", len(payload)) + payload)
                elif kind == "liar":
                    await stream.send_all(struct.pack(">I", 2**32 - 1) + b"\x00" * 64)
                    return
                elif kind == "malformed":
                    await stream.send_all(signed_nonsense(request))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(serve, listeners)


async def test_hostile_nodes_fail_their_own_vessels_only(tmp_path: Path) -> None:
    state = tmp_path / "nm"
    init_owned(state)
    async with node_manager(state, dht=False) as real, trio.open_nursery() as nursery:
        ports = {kind: await nursery.start(hostile_node, kind)
                 for kind in ("garbage", "liar", "silent", "malformed")}
        vessels = [Vessel("127.0.0.1", real.port, "v1"), Vessel("127.0.0.1", real.port, "v2"),
                   *(Vessel("127.0.0.1", port, "v1") for port in ports.values())]
        async with Experiment(OWNER, timeout=2) as exp:
            with trio.fail_after(20):
                results = await exp.status(vessels)
                again = await exp.stop(vessels)
        nursery.cancel_scope.cancel()
    assert [r.ok for r in results[:2]] == [True, True]
    assert [r.value.status for r in results[:2]] == ["Fresh", "Fresh"]
    assert [r.value for r in again[:2]] == ["not running", "not running"]
    for bad in (*results[2:], *again[2:]):
        assert not bad.ok and bad.error, bad
    assert results[4].status == "timeout"
    assert "GetVessels" in (results[5].error or ""), results[5]  # says what was wrong


def test_blocking_facade_errors_are_clear_and_it_closes() -> None:
    exp = BlockingExperiment(OWNER, timeout=1)
    with pytest.raises(ExperimentError, match="no DHT bootstrap configured"):
        exp.find_vessels()
    with (BlockingExperiment(OWNER, bootstrap=[("127.0.0.1", closed_port())], timeout=1) as other,
          pytest.raises(ExperimentError, match="DHT unreachable")):
        other.find_vessels()
    with pytest.raises(ExperimentError, match="no pool credential"):
        exp.acquire(1)
    exp.close()
    with pytest.raises(ExperimentError, match="closed"):
        exp.status([V])


def test_all_is_exact() -> None:
    import seash.experiment as api

    modules = {"blocking", "core", "identity", "keep", "model", "watch"}
    public = {name for name in vars(api) if not name.startswith("_")}
    assert public - modules == set(api.__all__)
