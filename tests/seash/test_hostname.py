"""``show hostname``: reverse DNS through an injected resolver (names from hosts-file data,
a resolver that never answers), one real lookup of 127.0.0.1, and ``seash -c`` against a
real node manager."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest
import trio

from seash.commands import Args
from seash.discovery import HOSTNAME_TIMEOUT, ReverseResolver, reverse_names, show_hostname, system_reverse
from seash.executor import Executor
from seash.session import Session, VesselRef
from seash.shell import JsonReporter
from seash.tree import TREE
from seattlecore import KeyPair, save_keypair
from tests.support.daemons import node_manager
from tests.support.seash import init_node, seash

HOSTS = """\
# an /etc/hosts-like table for the test's resolver
127.0.0.1   localhost
127.0.1.5   node5.testbed.example node5
::1         ip6-localhost
"""


def hosts_resolver(text: str) -> ReverseResolver:
    """A reverse resolver answering from hosts-file lines (the first name of an address)."""
    table: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            table.setdefault(fields[0], fields[1])

    async def resolve(address: str) -> str | None:
        await trio.sleep(0.01)
        return table.get(address)

    return resolve


async def test_names_from_hosts_data() -> None:
    shown = await reverse_names(["127.0.0.1", "127.0.1.5", "127.0.1.9", "::1", "node.example",
                                 "127.0.0.1"], hosts_resolver(HOSTS))
    assert shown == {"127.0.0.1": "localhost", "127.0.1.5": "node5.testbed.example",
                     "127.0.1.9": "127.0.1.9 (no name)", "::1": "ip6-localhost",
                     "node.example": "node.example (a name already)"}


async def test_a_dead_resolver_costs_one_timeout_per_round(autojump_clock: trio.abc.Clock) -> None:
    """40 lookups that never answer, 16 at a time: 3 rounds of 3 s, not 40 x 3 s."""
    async def dead(address: str) -> str | None:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    addresses = [f"127.0.2.{i}" for i in range(40)]
    shown = await reverse_names(addresses, dead)
    assert trio.current_time() == 3 * HOSTNAME_TIMEOUT
    assert set(shown.values()) == {f"{a} (no name: no answer within 3 s)" for a in addresses}


async def test_slow_lookups_do_not_hold_up_the_others(autojump_clock: trio.abc.Clock) -> None:
    async def mixed(address: str) -> str | None:
        if address.endswith(".1"):
            await trio.sleep(100)
        return "fast.example"

    shown = await reverse_names(["127.0.3.1", "127.0.3.2", "127.0.3.3"], mixed, timeout=2)
    assert shown == {"127.0.3.1": "127.0.3.1 (no name: no answer within 2 s)",
                     "127.0.3.2": "fast.example", "127.0.3.3": "fast.example"}
    assert trio.current_time() == 2


async def test_one_real_lookup_of_loopback() -> None:
    try:
        expected: str | None = socket.getnameinfo(("127.0.0.1", 0), socket.NI_NAMEREQD)[0]
    except OSError:
        expected = None
    assert await system_reverse("127.0.0.1") == expected


async def test_show_hostname_rows_with_an_injected_resolver(tmp_path: Path) -> None:
    session = Session()
    for host in ("127.0.1.5", "127.0.1.9", "127.0.1.5"):
        session.add_vessel(VesselRef(host, 63100, f"v{len(session.vessels) + 1}"))
    out = io.StringIO()
    reporter = JsonReporter(out)
    ex = Executor(TREE, session, reporter, home=tmp_path)
    reporter.begin("show hostname")
    await show_hostname(ex, Args(), resolve=hosts_resolver(HOSTS))
    reporter.end(True)
    rows = json.loads(out.getvalue())["tables"][0]["rows"]
    assert rows == [
        {"id": "%1", "node": "127.0.1.5:63100", "hostname": "node5.testbed.example"},
        {"id": "%2", "node": "127.0.1.9:63100", "hostname": "127.0.1.9 (no name)"},
        {"id": "%3", "node": "127.0.1.5:63100", "hostname": "node5.testbed.example"}]


@pytest.mark.slow
async def test_show_hostname_with_dash_c(tmp_path: Path) -> None:
    alice = KeyPair.generate()
    save_keypair(tmp_path / "home", "alice", alice)
    init_node(tmp_path / "nm", alice.public.to_text(), vessels=2)
    async with node_manager(tmp_path / "nm", dht=False) as nm:
        run = await seash(tmp_path / "home", f"loadkeys alice; contact 127.0.0.1:{nm.port}; "
                          "show hostname; show ip", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    name = await system_reverse("127.0.0.1")
    rows = run.doc("show hostname")["tables"][0]["rows"]
    assert [r["hostname"] for r in rows] == [name or "127.0.0.1 (no name)"] * 2
    assert run.doc("show ip")["text"] == [f"127.0.0.1:{nm.port}"]   # no longer an alias
