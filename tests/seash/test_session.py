"""session.py: identities, targets and groups (pure state)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seash.errors import IdentityError, UnknownTarget, UsageError
from seash.session import Identity, Session, VesselRef
from seattlecore import KeyPair

ALICE = KeyPair.generate()
BOB = KeyPair.generate()


def make() -> Session:
    s = Session()
    s.add_identity(Identity("alice", ALICE.public, ALICE))
    for port, vessel in [(1000, "v1"), (1000, "v2"), (2000, "v1")]:
        s.add_vessel(VesselRef("127.0.0.1", port, vessel))
    return s


def test_identities() -> None:
    s = Session()
    with pytest.raises(IdentityError, match="no identity loaded"):
        s.identity()
    s.add_identity(Identity("alice", ALICE.public, ALICE))
    s.add_identity(Identity("bob", BOB.public), make_current=False)
    assert s.current == "alice" and s.prompt() == "alice@%all !> "
    with pytest.raises(IdentityError, match="no private key"):
        s.signing_key("bob")
    with pytest.raises(IdentityError, match="unknown identity"):
        s.identity("carol")
    with pytest.raises(IdentityError, match="different key"):
        s.add_identity(Identity("bob", ALICE.public))
    assert s.public_key("bob") == BOB.public
    assert s.public_key(ALICE.public.to_text()) == ALICE.public
    with pytest.raises(IdentityError):
        s.public_key("zzz")


def test_vessel_ids_are_stable_and_deduplicated() -> None:
    s = make()
    assert s.add_vessel(VesselRef("127.0.0.1", 1000, "v2")) == 2
    assert s.resolve("%all") == [1, 2, 3]
    assert s.resolve("%3") == [3]
    assert s.resolve("127.0.0.1:1000:v2") == [2]
    assert s.vessel_ids_on(("127.0.0.1", 1000)) == [1, 2]
    s.forget_vessel(1)
    assert s.add_vessel(VesselRef("127.0.0.1", 3000, "v1")) == 4
    for bad in ("%1", "%x", "nogroup", "1.2.3.4:5:v1"):
        with pytest.raises(UnknownTarget):
            s.resolve(bad)


def test_groups_and_outcomes() -> None:
    s = make()
    s.add_to_group("g", [1, 2])
    s.add_to_group("g", [2, 3])
    assert s.resolve("g") == [1, 2, 3]
    s.remove_from_group("g", [2])
    assert s.groups["g"] == [1, 3]
    s.record_outcome("upload", [1], [3])
    assert s.resolve("uploadgood") == [1] and s.resolve("uploadfail") == [3]
    s.forget_vessel(3)
    assert s.groups["g"] == [1] and s.groups["uploadfail"] == []
    for bad in ("%x", "a b", "h:p", ""):
        with pytest.raises(UsageError):
            s.set_group(bad, [])
    s.delete_group("g")
    with pytest.raises(UnknownTarget):
        s.delete_group("g")


def test_round_trip_through_dict() -> None:
    s = make()
    s.add_identity(Identity("bob", BOB.public), make_current=False)
    s.set_group("mine", [1, 3])
    s.target = "mine"
    s.settings.timeout = 2.5
    s.settings.bootstrap = [("127.0.0.1", 4000)]
    t = Session.from_dict(s.to_dict())
    assert t.to_dict() == s.to_dict()
    assert t.signing_key("alice").public == ALICE.public
    assert t.add_vessel(VesselRef("h", 1, "v9")) == 4


def test_variables_and_autosave_round_trip_and_are_checked() -> None:
    s = make()
    s.variables = {"prog": "a.r2py", "_x1": "$not expanded"}
    s.settings.autosave = True
    t = Session.from_dict(s.to_dict())
    assert t.variables == s.variables and t.settings.autosave
    for bad in ({"1x": "v"}, {"a": 5}, {"a": "v" * 65537}, {f"v{i}": "" for i in range(1001)}):
        with pytest.raises(ValueError):
            Session.from_dict({**s.to_dict(), "variables": bad})
    old = s.to_dict()
    del old["variables"], old["settings"]["autosave"]          # a file from before variables
    assert Session.from_dict(old).variables == {}


@pytest.mark.slow  # runs seash
def test_loadkeys_says_where_and_never_searches_the_working_directory(tmp_path: Path) -> None:
    """A plain NAME is looked up in --home only (a ./alice.privatekey there could be another
    identity); a path loads that file; every load says where it read the key (issue 25)."""
    import subprocess
    import sys

    from seattlecore import KeyPair, save_keypair

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    save_keypair(work, "alice", KeyPair.generate())

    def seash(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "seash", "--home", str(home), "-c", script],
                              cwd=work, capture_output=True, text=True, timeout=60, check=False)

    plain = seash("loadkeys alice")
    assert plain.returncode == 1 and f"no key file alice.privatekey in {home}" in plain.stderr
    assert "give its path, e.g. ./alice" in plain.stderr
    explicit = seash("loadkeys ./alice; loadpub ./alice.publickey as al")
    assert explicit.returncode == 0, explicit.stderr
    assert f"loaded alice from {work / 'alice.privatekey'}: " in explicit.stdout
    assert f"loaded public key al from {work / 'alice.publickey'}: " in explicit.stdout
