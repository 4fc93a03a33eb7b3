"""What a researcher reads: seash's plain-text output against real node managers."""

from __future__ import annotations

from pathlib import Path

import pytest

from seattlecore import KeyPair, save_keypair
from tests.support.daemons import node_manager
from tests.support.seash import RESOURCES, init_node, seash, wait_advertised

pytestmark = pytest.mark.slow

PORTS = "".join(f"resource {kind} {port}\n" for kind in ("messport", "connport")
                for port in (63100, 63101, 63102, 63105))
TWO_LINES = 'log("first line")\nlog("second line")\n'


async def test_plain_output(tmp_path: Path) -> None:
    home = tmp_path / "home"
    alice = KeyPair.generate()
    save_keypair(home, "alice", alice)
    (tmp_path / "two.py").write_text(TWO_LINES)
    state = tmp_path / "nm"
    init_node(state, alice.public.to_text(), vessels=2, resources=RESOURCES + PORTS)
    async with node_manager(state, sandbox=True) as nm:
        boot = f"127.0.0.1:{nm.dht_port}"
        await wait_advertised(alice.public, ("127.0.0.1", nm.dht_port or 0), want=2)
        follow = await seash(home, "loadkeys alice; browse; show log --for 0.6", cwd=tmp_path,
                             bootstrap=boot, json_output=False)
        assert follow.returncode == 0, follow.stdout + follow.stderr
        assert "(log is empty)" not in follow.stdout
        browse_row = next(line for line in follow.stdout.splitlines() if " ok 2 of 2" in line)
        assert browse_row.count(f"127.0.0.1:{nm.port}") == 1, browse_row

        (tmp_path / "out").mkdir()
        run = await seash(home, "loadkeys alice; browse; run two.py; show log --for 3; "
                          "show log to out/log; show ip to out/ips; on %1 show resources; "
                          "shwo ip", cwd=tmp_path, bootstrap=boot, json_output=False)
        lines = run.stdout.splitlines()
        for target in ("%1", "%2"):
            assert f"{target:<4} | first line" in lines, run.stdout + run.stderr
            assert f"{target:<4} | second line" in lines, run.stdout + run.stderr
        logs = sorted((tmp_path / "out").glob("log.*"))
        assert [p.name for p in logs] == [f"log.127.0.0.1_{nm.port}_v1", f"log.127.0.0.1_{nm.port}_v2"]
        assert [p.read_text() for p in logs] == ["first line\nsecond line\n"] * 2, run.stdout
        assert (tmp_path / "out" / "ips").read_text() == f"127.0.0.1:{nm.port}\n"
        assert "resource messport 63100-63102, 63105" in lines
        assert "resource connport 63100-63102, 63105" in lines
        assert "did you mean 'show'?" in run.stderr
        assert run.returncode == 1  # the typo


SLOW = 'i = 0\nwhile i < 6:\n    log("slow %d" % i)\n    i += 1\n    sleep(0.3)\n'


async def test_follow_prints_one_header_per_vessel_and_the_summary_last(tmp_path: Path) -> None:
    """A slow program's lines arrive over several polls: each vessel's row is printed once,
    later lines go under it, and ``log: 2 ok`` comes once, after the last line (issue 25)."""
    home = tmp_path / "home"
    alice = KeyPair.generate()
    save_keypair(home, "alice", alice)
    (tmp_path / "slow.py").write_text(SLOW)
    state = tmp_path / "nm"
    init_node(state, alice.public.to_text(), vessels=2)
    async with node_manager(state, sandbox=True, dht=False) as nm:
        run = await seash(home, f"loadkeys alice; contact 127.0.0.1:{nm.port}; run slow.py; "
                          "show log --follow", cwd=tmp_path, json_output=False)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    follow = lines[max(i for i, line in enumerate(lines) if line.startswith("run: ")) + 1:]
    for target, vessel in (("%1", "v1"), ("%2", "v2")):
        headers = [line for line in follow if line.startswith(target) and f":{vessel} " in line]
        assert len(headers) == 1 and headers[0].split()[2] == "ok", run.stdout
        printed = [line.split("| ", 1)[1] for line in follow if line.startswith(f"{target:<4} | ")]
        assert printed == [f"slow {i}" for i in range(6)], run.stdout
    summaries = [i for i, line in enumerate(follow) if line.startswith("log: ")]
    assert len(summaries) == 1 and summaries[0] == len(follow) - 1, run.stdout
    assert follow[-1].startswith("log: 2 ok in "), run.stdout
