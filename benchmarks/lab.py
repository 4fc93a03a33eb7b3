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
(mixed kinds) and prints what works today from the researcher's host: adverts found, DHT
crawl, vessels usable from seash, public vs NATed.

Needs root (the lab). Nodes run with the real sandbox unless ``--no-sandbox``.

    .venv/bin/python benchmarks/lab.py [--nodes 10 20 50] [--nat 0.5 --nat-nodes 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ holds files named like the packages they measure: keep it off the import path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

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

from installer import TestbedError, labnet
from installer.lab import plan_lab
from installer.labbed import lab_reports, wait_lab_discoverable
from installer.testbed import wait_discoverable
from seattlecore import PublicKey

BIN = Path(sys.executable).parent
WAIT_TIMEOUT = 180.0


def cli(*args: str, cwd: Path | None = None) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "installer.testbed_cli", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 and args[0] != "shell":
        raise SystemExit(f"seattle-testbed {' '.join(args)} failed:\n{done.stderr}")
    return time.monotonic() - start, done.stdout


def available_mb() -> float:
    return float(psutil.virtual_memory().available) / 1e6


def nodes_rss_mb(data: dict[str, Any]) -> float:
    total = 0
    for node in data["nodes"]:
        try:
            total += psutil.Process(node["pid"]).memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


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
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        Path(tmp).chmod(0o755)
        directory = Path(tmp) / "tb"
        extra = [] if sandbox else ["--no-sandbox"]
        cli("up", "--lab", "--nodes", str(nodes), "--nat", str(fraction), "--nat-kind", "mixed",
            "--dir", str(directory), *extra)
        try:
            data = json.loads((directory / "testbed.json").read_text())
            print_reachability(data, decide_times(data))
            print(f"\nall adverts found after {discoverable(data):.1f} s", flush=True)
            print_baseline(directory, data)
        finally:
            cli("down", "--dir", str(directory))


def decide_times(data: dict[str, Any], timeout: float = 120.0) -> list[float]:
    """Seconds after ``up`` returned until each node's reachability was decided (nan: not)."""
    start = time.monotonic()
    times = [float("nan")] * len(data["nodes"])
    while time.monotonic() - start < timeout and any(t != t for t in times):
        for i, report in enumerate(lab_reports(data)):
            reach = report.reachability or {}
            if times[i] != times[i] and "unknown" not in (reach.get("tcp"), reach.get("udp")):
                times[i] = time.monotonic() - start
        time.sleep(0.5)
    return times


def print_reachability(data: dict[str, Any], times: list[float]) -> None:
    """Reachability per kind of host: decided right, how fast, DHT mode, NATed ids in tables."""
    reports = lab_reports(data)
    time.sleep(11)  # the DHT status files are rewritten every 10 s
    docs = [json.loads((Path(n["state"]) / "dht-status.json").read_text()) for n in data["nodes"]]
    nated = {d["stats"]["node_id"] for d, n in zip(docs, data["nodes"], strict=True) if n["nat"] != "none"}
    print(f"\nreachability ({len(data['nodes'])} hosts; seconds after 'up' returned)")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="*", default=[10, 20, 50],
                        help="lab sizes to compare with loopback (none: only --nat)")
    parser.add_argument("--nat", type=float, default=None, help="also run the NAT baseline")
    parser.add_argument("--nat-nodes", type=int, default=20)
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args()
    labnet.require_root()
    sandbox = not args.no_sandbox
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
