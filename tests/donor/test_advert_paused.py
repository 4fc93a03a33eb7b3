"""Adverts say when a donor paused a node's vessels (a donor tag), old readers accept them,
and nobody but the node can set or clear that state for its vessels."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import msgpack
import pytest
import trio

from nodemanager.donor.control import update_policy
from nodemanager.node.discovery import advert_tags
from nodemanager.proto.pool import FreeTag, encode_tag
from overlay import AdvertStore, LookupResult, dht_key_for, make_advert, open_advert, select_adverts
from overlay.advert import ADVERT_DOMAIN, FORMAT_VERSION, describe_tag, donor_tag, paused_in
from overlay.errors import InvalidAdvert, OverlayUsageError
from seash.discovery import paused_notes
from seattlecore import KeyPair, PublicKey, save_keypair
from tests.support.daemons import node_manager
from tests.support.dht import NOW, lookup_until, seeded_keys
from tests.support.worlds import OWNER, daemon, init

ROOT = Path(__file__).resolve().parents[2]
BEFORE = "4a2b026"
"""The last commit whose advert readers knew no donor tag."""

NODE = seeded_keys("paused-node")
OTHER = seeded_keys("paused-attacker")
USER = seeded_keys("paused-user").public
KEY = dht_key_for(USER)


def offered(store: AdvertStore, record: bytes, now: float = NOW) -> str:
    """What the store did with ``record``: its outcome, or the reason it refused it."""
    try:
        return store.offer(KEY, record, now)
    except InvalidAdvert as exc:
        return exc.reason


def blob(signer: KeyPair = NODE, *, seq: int = 10, tag: bytes = b"", vessel: str = "v1") -> bytes:
    return make_advert(signer, address="127.50.0.1:1224", vessel=vessel, user_key=USER, seq=seq,
                       expires_at=NOW + 600, tag=tag)


def test_donor_tag_round_trip_and_bad_tags_read_as_not_paused() -> None:
    for reason in ("manual", "battery", "schedule", "busy"):
        assert paused_in(donor_tag(reason)) == reason
        assert open_advert(blob(tag=donor_tag(reason)), now=NOW).paused == reason
    assert open_advert(blob(), now=NOW).paused is None
    pool_tag = encode_tag(FreeTag(pool=USER, cpu=0.1, memory=1, disk=1, reach="public"))
    assert paused_in(pool_tag) is None  # another kind
    for junk in (b"\xc1", b"\x01", msgpack.packb({"k": "donor", "p": "MANUAL"}),
                 msgpack.packb({"k": "donor", "p": "x" * 17}),
                 msgpack.packb({"k": "donor", "p": 5}),
                 msgpack.packb({"k": "donor", "p": "busy", "x": 1}),
                 msgpack.packb(["donor", "busy"]), b"", msgpack.packb({"k": "donor"})):
        assert paused_in(junk) is None, junk
    for bad in ("", "Manual", "a" * 17, "busy\n"):
        with pytest.raises(OverlayUsageError):
            donor_tag(bad)
    assert describe_tag(donor_tag("schedule")) == "paused by donor: schedule"


def _reader_at(commit: str) -> ModuleType:
    """overlay/advert.py as it was at ``commit`` (a reader of the earlier revision)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:overlay/advert.py"],
                            capture_output=True, check=True).stdout
    spec = importlib.util.spec_from_loader("old_advert", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_advert"] = module  # dataclasses look their module up while defining
    try:
        exec(compile(source, "old_advert.py", "exec"), module.__dict__)
    finally:
        del sys.modules["old_advert"]
    return module


def test_readers_and_stores_of_the_previous_revision_accept_paused_records() -> None:
    old = _reader_at(BEFORE)
    paused = blob(tag=donor_tag("manual"))
    advert = old.verify_advert(paused, dht_key=KEY, now=NOW)
    assert advert.vessel == "v1" and advert.tag == donor_tag("manual")
    assert old.describe_tag(advert.tag) == "k=donor p=manual"  # shown, not misread
    assert offered(AdvertStore(), paused) == "stored"


def test_a_forged_pause_for_another_nodes_vessel_is_refused() -> None:
    """An attacker cannot mark node B's vessel paused: signing as B needs B's key; a record
    of its own is another slot; a tag added to B's record breaks B's signature."""
    store = AdvertStore()
    assert offered(store, blob()) == "stored"
    # 1. B's key in the body, the attacker's signature
    body = msgpack.unpackb(msgpack.unpackb(blob(tag=donor_tag("manual")))[1])
    body_bytes = msgpack.packb(body, use_bin_type=True)
    forged = msgpack.packb([FORMAT_VERSION, body_bytes, OTHER.sign(ADVERT_DOMAIN, body_bytes)],
                           use_bin_type=True)
    assert offered(store, forged) == "bad_signature"
    # 2. B's real record with a donor tag spliced into the body (signature kept)
    outer = msgpack.unpackb(blob(seq=11))
    spliced_body = msgpack.unpackb(outer[1])
    spliced_body["t"] = donor_tag("busy")
    spliced = msgpack.packb([outer[0], msgpack.packb(spliced_body, use_bin_type=True), outer[2]],
                            use_bin_type=True)
    assert offered(store, spliced) == "bad_signature"
    # 3. the attacker's own record: its own slot, B's stays as B signed it
    assert offered(store, blob(OTHER, tag=donor_tag("manual"))) == "stored"
    chosen = select_adverts([("s", b) for b in store.blobs(KEY, NOW)], dht_key=KEY, now=NOW)
    by_node = {a.node_key: a.paused for a in chosen.candidates}
    assert by_node == {NODE.public: None, OTHER.public: "manual"}
    assert chosen.rejected == ()


def test_a_replayed_pause_after_resume_loses() -> None:
    paused = blob(seq=10, tag=donor_tag("manual"))
    resumed = blob(seq=11)
    store = AdvertStore()
    assert offered(store, paused) == "stored"
    assert offered(store, resumed) == "replaced"
    assert offered(store, paused, NOW + 1) == "stale_seq"
    # a reader told the old record by one holder and the new one by another: the new wins
    chosen = select_adverts([("replayer", paused), ("honest", resumed)], dht_key=KEY, now=NOW)
    assert [a.paused for a in chosen.candidates] == [None]


def test_browse_notes_paused_vessels_before_asking_any_node() -> None:
    adverts = [open_advert(b, now=NOW) for b in (
        blob(tag=donor_tag("battery")), blob(tag=donor_tag("battery"), vessel="v2"),
        blob(OTHER, vessel="v3"))]
    assert paused_notes(adverts) == ["127.50.0.1:1224: v1, v2 paused by the donor (battery)"]
    assert paused_notes(adverts[2:]) == []


@pytest.mark.slow
async def test_a_paused_node_reannounces_at_once_and_lookups_show_it(tmp_path: Path) -> None:
    """Real node managers and DHT: ``pause`` (the policy file, as the CLI writes it) reaches a
    lookup in well under the republish interval, and ``resume`` clears it the same way."""
    states = [tmp_path / "boot", tmp_path / "donor"]
    for state in states:
        init(state)
    host = "127.50.7.1"
    async with daemon(states[0], [], host) as (_, boot_dht, _):
        boot = (host, boot_dht)
        extra = ["--listen", f"{host}:0", "--no-ui"]
        async with node_manager(states[1], bootstrap=[f"{host}:{boot_dht}"], sandbox=True,
                                extra=extra) as donor:
            mine = f"{host}:{donor.port}"

            def paused(reason: str | None) -> Callable[[LookupResult], bool]:
                def accept(found: LookupResult) -> bool:
                    ours = [a for a in found.candidates if a.address == mine]
                    return len(ours) == 2 and all(a.paused == reason for a in ours)
                return accept

            await lookup_until(OWNER.public, boot, paused(None), timeout=30)
            update_policy(states[1], paused=True)
            found = await lookup_until(OWNER.public, boot, paused("manual"), timeout=15)
            others = [a for a in found.candidates if a.address != mine]
            assert others and all(a.paused is None for a in others)  # only the donor's node
            save_keypair(tmp_path / "home", "owner", OWNER)
            browse = await trio.run_process(
                [sys.executable, "-m", "seash", "--home", str(tmp_path / "home"), "--bootstrap",
                 f"{host}:{boot_dht}", "--timeout", "30", "-c", "loadkeys owner; browse"],
                capture_stdout=True, capture_stderr=True, check=False)
            out = browse.stdout.decode()
            assert browse.returncode == 0, out + browse.stderr.decode()
            assert f"{mine}: v1, v2 paused by the donor (manual)" in out, out
            assert out.count("paused by the donor") == 1, out  # not the other node
            update_policy(states[1], paused=False)
            await lookup_until(OWNER.public, boot, paused(None), timeout=15)


def test_pool_tags_win_and_no_tag_while_running() -> None:
    """The donor tag goes on every advertised pair without a pool tag, only while paused."""
    pool_tag = encode_tag(FreeTag(pool=USER, cpu=0.1, memory=1, disk=1, reach="public"))

    class Server:
        donor_paused: str | None = None

        def advert_entries(self) -> list[tuple[str, PublicKey]]:
            return [("v1", USER), ("v2", OWNER.public), ("p1", USER)]

        def advert_tags(self) -> dict[tuple[str, PublicKey], bytes]:
            return {("p1", USER): pool_tag}

    server = Server()
    assert advert_tags(server) == {("p1", USER): pool_tag}  # type: ignore[arg-type]
    server.donor_paused = "schedule"
    tags = advert_tags(server)  # type: ignore[arg-type]
    assert tags == {("v1", USER): donor_tag("schedule"), ("v2", OWNER.public): donor_tag("schedule"),
                    ("p1", USER): pool_tag}
