"""The network lab against loopback: ``seattle-testbed up [--lab] --nodes N``, then seash.

For each N and each mode (loopback, lab) it runs the real command line in a fresh directory:
``up`` (wall time until every node is up); the time until the demo key's lookup from the
researcher's host finds every node's adverts ("+found s"; nan: not within 180 s); the node
managers' RSS and the machine's MemAvailable drop (which also counts the kernel's
namespaces, veths and conntrack); then ``seash -c "loadkeys demo; browse; list"`` on the
researcher's host (both modes through ``seattle-testbed shell``, so both pay the same
start-up), timed as a whole and as seash reports the DHT lookup, ``browse`` (asking every
node found) and ``list``; then ``down``. "net s" is the lab's network alone
(namespaces, links, NAT rules: built and removed without nodes).

With ``--nat F`` it also runs one lab of ``--nat-nodes`` hosts with that share behind NAT
(mixed kinds) and prints what works from the researcher's host: adverts found, DHT crawl,
vessels usable from seash, public vs NATed. NATed nodes reach the researcher through relays
(``--pin-reachability``: each node is told whether it is behind NAT, so the figures measure
relaying, not probing); the relay section then measures browse+list against an all-public
lab of the same size, relayed vs direct request latency, relay CPU per relayed request, and
the time from kill -9 of a relay until every advert names live relays again.

With ``--punch T`` it runs T hole punches per pair of hosts in a lab network with no node
managers (observers and a splicing rendezvous standing in for a relay, as in
tests/nodemanager/test_punch_lab.py) and prints, per NAT pairing, the share of
researcher->donor connections that end direct within 2 s, the median time to direct
(from the first handshake byte on the relayed stream to a confirmed direct stream), how
many attempts it took and what the researcher's side did (simultaneous open, or listen /
connect when one side is public: connection reversal).

Needs root (the lab). Nodes run with the real sandbox unless ``--no-sandbox``.

    .venv/bin/python benchmarks/lab.py [--nodes 10 20 50] [--nat 0.5 --nat-nodes 20] [--punch 50]
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ holds files named like the packages they measure: keep it off the import path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testbed.lab.punch

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from typing import Any

import psutil
import trio

from installer import TestbedError
from seattlecore import PublicKey
from testbed.lab import net as labnet
from testbed.lab.nodes import lab_reports, wait_lab_discoverable
from testbed.lab.plan import plan_lab
from testbed.local import nodes_rss_mb, wait_discoverable

BIN = Path(sys.executable).parent
WAIT_TIMEOUT = 180.0


def cli(*args: str, cwd: Path | None = None) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "testbed.cli", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 and args[0] != "shell":
        raise SystemExit(f"seattle-testbed {' '.join(args)} failed:\n{done.stderr}")
    return time.monotonic() - start, done.stdout


def available_mb() -> float:
    return float(psutil.virtual_memory().available) / 1e6


def on_researcher(directory: Path, data: dict[str, Any], *argv: str) -> tuple[float, str]:
    """A command on the researcher's host (the machine itself on loopback), both through
    ``seattle-testbed shell`` so that both pay the same start-up."""
    return cli("shell", "--dir", str(directory), "--", *argv)


def seash(directory: Path, data: dict[str, Any], commands: str) -> tuple[float, str]:
    return on_researcher(directory, data, str(BIN / "seash"), "--home", str(directory / "keys"),
                         "--bootstrap", data["bootstrap"], "-c", commands)


def reported(output: str, command: str) -> float:
    """The 'in X s' that seash printed for ``command`` (for DHT: the lookup's '(X s)')."""
    pattern = r"^DHT: .*\(([0-9.]+) s\)" if command == "DHT" else rf"^{command}: .* in ([0-9.]+) s"
    match = re.search(pattern, output, re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


def discoverable(data: dict[str, Any]) -> float:
    """Seconds until every node's adverts are found from the researcher's host (nan: not
    within WAIT_TIMEOUT)."""
    key = PublicKey.from_text(Path(data["demo"]["publickey"]).read_text())
    try:
        if "lab" in data:
            return wait_lab_discoverable(data, key, WAIT_TIMEOUT)
        return trio.run(wait_discoverable, data["bootstrap"], key, len(data["nodes"]), WAIT_TIMEOUT)
    except TestbedError:
        return float("nan")


def network_only(nodes: int) -> float:
    """Build and remove the lab's network for ``nodes`` hosts (no node managers)."""
    start = time.monotonic()
    public, home = labnet.claim_ranges(None, None)
    plan = plan_lab("0bece0", nodes, public, home)
    labnet.write_record(plan.lab_id, plan.ranges, Path("/nonexistent"))
    try:
        labnet.apply_plan(plan)
    finally:
        labnet.teardown(plan.lab_id, plan.ranges)
    return time.monotonic() - start


def measure(nodes: int, lab: bool, sandbox: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        Path(tmp).chmod(0o755)
        directory = Path(tmp) / "tb"
        extra = (["--lab"] if lab else []) + ([] if sandbox else ["--no-sandbox"])
        before = available_mb()
        row: dict[str, float] = {}
        try:
            up, _ = cli("up", "--nodes", str(nodes), "--dir", str(directory), *extra)
            data = json.loads((directory / "testbed.json").read_text())
            row |= {"up": up, "wait": discoverable(data), "rss": nodes_rss_mb(data),
                    "mem": before - available_mb()}
            wall, out = seash(directory, data, "loadkeys demo; browse; list")
            row |= {"seash": wall, "lookup": reported(out, "DHT"), "browse": reported(out, "browse"),
                    "list": reported(out, "list"),
                    "found": float(out.count("vessels usable"))}
        finally:
            if (directory / "testbed.json").exists():
                row["down"], _ = cli("down", "--dir", str(directory))
    return row


def nat_baseline(nodes: int, fraction: float, sandbox: bool) -> None:
    public = public_browse(nodes, sandbox)
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        Path(tmp).chmod(0o755)
        directory = Path(tmp) / "tb"
        extra = [] if sandbox else ["--no-sandbox"]
        wall, out = cli("up", "--lab", "--nodes", str(nodes), "--nat", str(fraction),
                        "--nat-kind", "mixed", *(["--pin-reachability"] if PIN else []),
                        "--dir", str(directory), "--wait", *extra)
        try:
            data = json.loads((directory / "testbed.json").read_text())
            _, listed = seash(directory, data, "loadkeys demo; browse; list")
            print(f"\nup --lab --nodes {nodes} --nat {fraction} --nat-kind mixed --wait: "
                  f"{wall:.1f} s in all; usable {usable_after(out):.1f} s after every node "
                  f"manager was up (goal < 15 s); then seash list: "
                  f"{reported_ok(listed, 'list')} of {2 * nodes} vessels ok", flush=True)
            print_reachability(data, decide_times(data))
            print(f"\nall adverts found after {discoverable(data):.1f} s; every NATed advert "
                  f"names a relay after {relayed_adverts(directory, data):.1f} s", flush=True)
            print_baseline(directory, data)
            relay_costs(directory, data, public)
        finally:
            cli("down", "--dir", str(directory))


USABLE = re.compile(r"usable ([0-9.]+) s after")
DECIDED = re.compile(r"reachability decided ([0-9.]+) s after the prober started")


def usable_after(out: str) -> float:
    """The seconds ``up --wait`` reported (nan if it did not)."""
    match = USABLE.search(out)
    return float(match.group(1)) if match else float("nan")


def reported_ok(out: str, command: str) -> int:
    match = re.search(rf"^{command}: ([0-9]+) ok", out, re.MULTILINE)
    return int(match.group(1)) if match else 0


def decide_times(data: dict[str, Any]) -> list[float]:
    """Seconds from each node's prober start (its DHT node up) until both its ports were
    decided, from the node's log (nan: not decided)."""
    times = []
    for node in data["nodes"]:
        text = (Path(node["state"]) / "nodemanager.log").read_text(errors="replace")
        match = DECIDED.search(text)
        times.append(float(match.group(1)) if match else float("nan"))
    return times


def print_reachability(data: dict[str, Any], times: list[float]) -> None:
    """Reachability per kind of host: decided right, how fast, DHT mode, NATed ids in tables."""
    reports = lab_reports(data)
    time.sleep(11)  # the DHT status files are rewritten every 10 s
    docs = [json.loads((Path(n["state"]) / "dht-status.json").read_text()) for n in data["nodes"]]
    nated = {d["stats"]["node_id"] for d, n in zip(docs, data["nodes"], strict=True) if n["nat"] != "none"}
    print(f"\nreachability ({len(data['nodes'])} hosts; seconds from each node's DHT start to "
          f"both ports decided; goal: median < 3 s)")
    print(f"{'donors':<10} {'hosts':>5} {'decided right':>13} {'median s':>8} {'max s':>6} "
          f"{'observed right':>14} {'DHT client':>10} {'NATed ids in tables':>19}")
    for kind in ("none", "cone", "symmetric"):
        rows = [(n, r, t, d) for n, r, t, d in zip(data["nodes"], reports, times, docs, strict=True)
                if n["nat"] == kind]
        if not rows:
            continue
        want = "public" if kind == "none" else "private"
        right = sum((r.reachability or {}).get("tcp") == want == (r.reachability or {}).get("udp")
                    for _, r, _, _ in rows)
        observed = sum((r.reachability or {}).get("observed") == n["public_address"] for n, r, _, _ in rows)
        spans = sorted(t for _, _, t, _ in rows)
        held = sum(len(nated & {p["id"] for p in d["peers"]}) for _, _, _, d in rows)
        print(f"{'public' if kind == 'none' else kind:<10} {len(rows):>5} {right:>6} of {len(rows):<4} "
              f"{spans[len(spans) // 2]:>8.1f} {spans[-1]:>6.1f} {observed:>7} of {len(rows):<4} "
              f"{sum(d['mode'] == 'client' for _, _, _, d in rows):>10} {held:>19}", flush=True)
def lookup_adverts(directory: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    _, found = on_researcher(directory, data, str(BIN / "seattle-dht"), "lookup", "--json",
                             "--bootstrap", data["bootstrap"], data["demo"]["publickey"])
    adverts: list[dict[str, Any]] = json.loads(found)["candidates"]
    return adverts


def relayed_adverts(directory: Path, data: dict[str, Any], avoid: str = "-") -> float:
    """Seconds until every NATed node's adverts name relays (none of them ``avoid``)."""
    nated = {f"{n['public_address']}:{n['port']}" for n in data["nodes"] if n["nat"] != "none"}
    start = time.monotonic()
    while time.monotonic() - start < WAIT_TIMEOUT:
        adverts = [a for a in lookup_adverts(directory, data) if a["address"] in nated]
        if ({a["address"] for a in adverts if a["relays"]} >= nated
                and all(avoid not in a["relays"] for a in adverts)):
            return time.monotonic() - start
        time.sleep(0.5)
    return float("nan")


def public_browse(nodes: int, sandbox: bool) -> tuple[float, float, float]:
    """seash browse+list (wall, browse, list) in an all-public lab of ``nodes`` hosts."""
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        Path(tmp).chmod(0o755)
        directory = Path(tmp) / "tb"
        cli("up", "--lab", "--nodes", str(nodes), "--wait", "--dir", str(directory),
            *([] if sandbox else ["--no-sandbox"]))
        try:
            data = json.loads((directory / "testbed.json").read_text())
            wall, out = seash(directory, data, "loadkeys demo; browse; list")
            return wall, reported(out, "browse"), reported(out, "list")
        finally:
            cli("down", "--dir", str(directory))


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def relay_costs(directory: Path, data: dict[str, Any], public: tuple[float, float, float]) -> None:
    """Browse+list vs all-public, relayed vs direct latency, relay CPU, relay-kill recovery."""
    wall, out = seash(directory, data, "loadkeys demo; browse; list")
    print(f"\nrelays: seash browse+list {wall:.1f} s (browse {reported(out, 'browse'):.2f} s, "
          f"list {reported(out, 'list'):.2f} s) vs all-public lab {public[0]:.1f} s "
          f"(browse {public[1]:.2f} s, list {public[2]:.2f} s)")
    adverts = lookup_adverts(directory, data)
    relay_host = next(a["relays"][0] for a in adverts if a["relays"]).rpartition(":")[0]
    relay_node = next(n for n in data["nodes"] if n["address"] == relay_host)
    count = 200
    before = cpu_seconds(relay_node["pid"])
    _, probe = on_researcher(directory, data, sys.executable,
                             str(Path(__file__).with_name("relay_probe.py")), data["bootstrap"],
                             str(directory / "keys"), str(count))
    result = json.loads(probe.strip().splitlines()[-1])
    cpu = (cpu_seconds(relay_node["pid"]) - before) / (count + 1)
    print(f"GetVessels median latency: direct {result['direct']['median_ms']:.2f} ms, "
          f"relayed {result['relayed']['median_ms']:.2f} ms ({result['relayed']['path']}); "
          f"relay CPU {cpu * 1e6:.0f} us per relayed request (its whole process, {count} requests)")
    relay_kill(directory, data, adverts)


def relay_kill(directory: Path, data: dict[str, Any], adverts: list[dict[str, Any]]) -> None:
    """kill -9 a relay (not the bootstrap); time until adverts name live relays; seash list."""
    boot = data["nodes"][0]["address"]
    used = sorted({r for a in adverts for r in a["relays"] if not r.startswith(boot + ":")})
    victim = used[0]
    node = next(n for n in data["nodes"] if n["address"] == victim.rpartition(":")[0])
    moved = sum(1 for a in adverts if victim in a["relays"]) // 2
    os.kill(node["pid"], 9)
    recovery = relayed_adverts(directory, data, avoid=victim)
    _, out = seash(directory, data, "loadkeys demo; browse; list")
    nated = [n for n in data["nodes"] if n["nat"] != "none"]
    usable = sum(2 for n in nated
                 if re.search(rf"^{re.escape(n['public_address'])}:{n['port']} +ok ", out, re.M))
    print(f"relay kill: {moved} NATed nodes used {victim}; every advert names live relays "
          f"{recovery:.1f} s after kill -9; then {usable} of {2 * len(nated)} NATed vessels usable")


def print_baseline(directory: Path, data: dict[str, Any]) -> None:
    _, found = on_researcher(directory, data, str(BIN / "seattle-dht"), "lookup", "--json",
                             "--bootstrap", data["bootstrap"], data["demo"]["publickey"])
    adverts = {a["address"] for a in json.loads(found)["candidates"]}
    _, crawled = on_researcher(directory, data, str(BIN / "seattle-dht"), "crawl", "--json",
                               "--bootstrap", data["bootstrap"])
    crawl = json.loads(crawled)
    live_ips = {address.rpartition(":")[0] for address in crawl["live_nodes"]}
    listed_ips = live_ips | {a.rpartition(":")[0] for a in crawl["unreachable_nodes"]}
    wall, out = seash(directory, data, "loadkeys demo; browse; list")
    print(f"\nNAT baseline: {len(data['nodes'])} hosts, researcher public; seash browse+list "
          f"{wall:.1f} s (browse {reported(out, 'browse'):.1f} s)")
    print(f"{'donors':<10} {'hosts':>5} {'adverts found':>13} {'in DHT tables':>13} "
          f"{'DHT answers':>11} {'vessels usable':>14}")
    for kind in ("none", "cone", "symmetric"):
        group = [n for n in data["nodes"] if n["nat"] == kind]
        if not group:
            continue
        seen = [f"{n['public_address']}:{n['port']}" for n in group]
        usable = sum(2 for address in seen if re.search(rf"^{re.escape(address)} +ok ", out, re.M))
        print(f"{'public' if kind == 'none' else kind:<10} {len(group):>5} "
              f"{sum(a in adverts for a in seen):>6} of {len(group):<4} "
              f"{sum(n['public_address'] in listed_ips for n in group):>6} of {len(group):<4} "
              f"{sum(n['public_address'] in live_ips for n in group):>4} of {len(group):<4} "
              f"{usable:>6} of {2 * len(group):<5}")


PUNCH_PAIRS = (
    ("cone <-> public", "n004", "n001"),
    ("cone <-> cone", "researcher", "n001"),
    ("cone <-> cone", "researcher", "n003"),
    ("symmetric", "researcher", "n002"),
    ("symmetric<->pub", "n004", "n002"),
    ("bare masq", "researcher", "n003"),
    ("bare masq", "n004", "n003"),
)
"""(label, researcher's host, donor's host) in ``punchlab.bare_lab``: n004 is public, n001 and
n003 sit behind cone NATs, n002 behind a symmetric one, the researcher behind a cone NAT.
For the "bare masq" rows n003's router loses its firewall (masquerade alone)."""


def punch_row(label: str, researcher: str, donor: str, outcomes: list[Any]) -> str:
    trials = len(outcomes)
    direct = sorted(o.elapsed for o in outcomes if o.direct is not None)
    quick = sum(t <= 2.0 for t in direct)
    tries = [sum(o.direct is not None and o.attempts == n for o in outcomes) for n in (1, 2, 3)]
    reasons = sorted({re.sub(r"\d+", "N", o.reason) for o in outcomes if o.direct is None})
    median = direct[len(direct) // 2] if direct else float("nan")
    p90 = direct[int(len(direct) * 0.9)] if direct else float("nan")
    roles = sorted({o.role for o in outcomes if o.direct is not None})
    return (f"{label:<16} {researcher + '->' + donor:<16} {quick:>5}/{trials:<3} "
            f"{100 * quick / trials:>3.0f}% {median:>8.3f} {p90:>6.3f} "
            f"{'/'.join(map(str, tries)):>14} {','.join(roles):<12} {'; '.join(reasons)[:80]}")


def punch_table(trials: int) -> None:
    from testbed.lab.punch import bare_lab, start_services, trial

    print(f"\nhole punching, {trials} researcher->donor connections per pair (no node managers)")
    print(f"{'NAT pairing':<16} {'pair':<16} {'direct <=2 s':>12} {'median s':>8} {'p90 s':>6} "
          f"{'attempts 1/2/3':>14} {'researcher':<12} relayed: reason")
    with bare_lab() as plan:
        services, stop = start_services(plan)
        done: set[str] = set()
        try:
            for label, researcher, donor in PUNCH_PAIRS:
                if label == "bare masq" and "bare" not in done:
                    done.add("bare")
                    router = plan.host(donor).router
                    assert router is not None
                    subprocess.run(labnet.exec_argv(router.namespace, ["nft", "delete", "table", "inet",
                                                                       "filter"]), check=True)
                outcomes = [trial(plan, services, researcher, donor)[0] for _ in range(trials)]
                print(punch_row(label, researcher, donor, outcomes), flush=True)
        finally:
            stop()


def nat_direct_table(nodes: int, trials: int, researcher_nat: bool) -> None:
    """The whole stack: a testbed with cone-NATed donors; the researcher dials each NATed
    donor ``trials`` times (relay, then hole punch) and asks it for its status."""
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        Path(tmp).chmod(0o755)
        directory = Path(tmp) / "tb"
        cli("up", "--lab", "--nodes", str(nodes), "--nat", "0.5", "--nat-kind", "cone",
            "--pin-reachability", "--no-sandbox", "--wait", "--dir", str(directory),
            *(["--researcher-nat"] if researcher_nat else []))
        try:
            data = json.loads((directory / "testbed.json").read_text())
            with labnet.inside(data["lab"]["researcher"]["namespace"]):
                rows = trio.run(_dial_nated, data, trials)
        finally:
            cli("down", "--dir", str(directory))
    direct = sorted(t for path, t, _ in rows if path == "punched")
    quick = sum(t <= 2.0 for t in direct)
    tries = [sum(path == "punched" and n == a for path, _, a in rows) for n in (1, 2, 3)]
    median = direct[len(direct) // 2] if direct else float("nan")
    print(f"{'cone donors, researcher ' + ('cone' if researcher_nat else 'public'):<34} "
          f"{quick:>4}/{len(rows):<4} {100 * quick / max(1, len(rows)):>3.0f}% {median:>8.3f} "
          f"{'/'.join(map(str, tries)):>14}  other paths: "
          f"{sorted({p for p, _, _ in rows if p != 'punched'}) or '-'}", flush=True)


async def _dial_nated(data: dict[str, Any], trials: int) -> list[tuple[str, float, int]]:
    """(path, seconds to a usable session, punch attempts) per dial of a NATed donor."""
    from nodemanager import NodeClient
    from nodemanager.nat.dial import Route, dial
    from nodemanager.nat.punchdial import punch_upgrade
    from overlay import lookup_once

    key = PublicKey.from_text(Path(data["demo"]["publickey"]).read_text())
    host, port = data["bootstrap"].rsplit(":", 1)
    deadline = trio.current_time() + WAIT_TIMEOUT
    nated = {f"{n['public_address']}:{n['port']}" for n in data["nodes"] if n["nat"] != "none"}
    while True:  # until every NATed donor's adverts name a relay
        found = await lookup_once(key, [(host, int(port))])
        routes = {a.address: Route.from_advert(a) for a in found.candidates if a.relays}
        if set(routes) >= nated or trio.current_time() > deadline:
            break
        await trio.sleep(1)
    observers = [(host, int(port)), *((h, int(p)) for h, _, p in
                                      (a.rpartition(":") for a in found.peers_answered))]
    rows: list[tuple[str, float, int]] = []
    for _ in range(trials):
        for route in routes.values():
            seen: list[int] = []
            start = trio.current_time()
            hook = punch_upgrade(lambda: observers, on_outcome=lambda o, s=seen: s.append(o.attempts))
            dialed = await dial(route, upgrade=hook)
            client = NodeClient(dialed.stream, node_key=route.node_key, timeout=10)
            await client.get_node_status()
            rows.append((dialed.path, trio.current_time() - start, seen[0] if seen else 0))
            await client.aclose()
    return rows


PIN = False
"""``--pin-reachability``: the NAT section's nodes are told, not probing (set by main)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="*", default=[10, 20, 50],
                        help="lab sizes to compare with loopback (none: only --nat)")
    parser.add_argument("--nat", type=float, default=None, help="also run the NAT baseline")
    parser.add_argument("--nat-nodes", type=int, default=20)
    parser.add_argument("--no-sandbox", action="store_true")
    parser.add_argument("--nat-only", action="store_true", help="only the NAT section")
    parser.add_argument("--pin-reachability", action="store_true",
                        help="tell NAT-lab nodes whether they are NATed instead of probing")
    parser.add_argument("--punch", type=int, default=None, metavar="T",
                        help="only the hole-punching table, T trials per pair")
    args = parser.parse_args()
    global PIN
    PIN = args.pin_reachability
    labnet.require_root()
    if args.punch is not None:
        punch_table(args.punch)
        print(f"\nwhole stack ({args.nat_nodes} hosts, half behind cone NATs, testbed on the lab): "
              f"dial each NATed donor via its relay, punch, GetNodeStatus; {args.punch // 10 or 1} rounds")
        print(f"{'':<34} {'direct <=2 s':>12} {'median s':>8} {'attempts 1/2/3':>14}")
        for researcher_nat in (False, True):
            nat_direct_table(args.nat_nodes, args.punch // 10 or 1, researcher_nat)
        return
    sandbox = not args.no_sandbox
    if args.nat_only:
        nat_baseline(args.nat_nodes, args.nat if args.nat is not None else 0.5, sandbox)
        return
    print(f"seattle-testbed up, wait until discoverable, then seash browse+list on the researcher's host; "
          f"{os.cpu_count()} cores, 2 vessels per node, sandbox {'on' if sandbox else 'off'}")
    print(f"{'nodes':>5} {'mode':<8} {'net s':>5} {'up s':>6} {'+found s':>8} {'RSS MB':>7} {'mem MB':>7} "
          f"{'seash s':>7} {'lookup s':>8} {'browse s':>8} {'list s':>6} {'nodes ok':>8} {'down s':>6}")
    for nodes in args.nodes:
        for lab in (False, True):
            net = f"{network_only(nodes):5.1f}" if lab else "    -"
            row = measure(nodes, lab, sandbox)
            print(f"{nodes:>5} {'lab' if lab else 'loopback':<8} {net} {row['up']:>6.1f} {row['wait']:>8.1f} "
                  f"{row['rss']:>7.0f} {row['mem']:>7.0f} {row['seash']:>7.2f} {row['lookup']:>8.2f} "
                  f"{row['browse']:>8.2f} "
                  f"{row['list']:>6.2f} {row['found']:>8.0f} {row.get('down', 0):>6.1f}", flush=True)
    if args.nat is not None:
        nat_baseline(args.nat_nodes, args.nat, sandbox)


if __name__ == "__main__":
    main()
