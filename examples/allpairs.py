"""All-pairs latency experiment: every vessel pings every other one (docs/experiments.md).

Deploys examples/allpairs_probe.r2py to every vessel of the identity, each with its own
UDP port (the first messport of its grant) and the list of all vessels (peers.txt);
follows their logs until every probe has heard every peer (at most ``--seconds``), puts
stop.txt into every vessel, waits for the probes to end, downloads each vessel's
latency.csv and writes

* OUT/latency.csv: one row per ordered pair (source, destination): pings sent, answers,
  median and minimum round trip in ms, and ``status`` (ok, no answer, or why the source
  gave no results);
* OUT/latency.png: the heat map of the median round trips (crossed cells: no answer).

    python examples/allpairs.py --testbed DIR [--out DIR] [--seconds 60]
    python examples/allpairs.py --key alice --keys ~/.seash --bootstrap HOST:PORT

Needs the ``experiments`` extra (matplotlib): ``pip install 'seattle-p2p[experiments]'``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nodemanager import NodeClient
from seash.client import Job
from seash.experiment import BlockingExperiment, Vessel, load_identity
from seash.parse import parse_hostport

PROBE = Path(__file__).resolve().with_name("allpairs_probe.r2py")
FIELDS = ("source", "destination", "sent", "received", "median_ms", "min_ms", "status")
log = logging.getLogger("allpairs")


@dataclass(frozen=True, slots=True)
class Pair:
    source: str
    destination: str
    sent: int = 0
    received: int = 0
    median_ms: float | None = None
    min_ms: float | None = None
    status: str = "ok"


def endpoint(vessel: Vessel, port: int) -> str:
    return f"{vessel.host}:{port}"


def read_probe_csv(text: str) -> dict[str, tuple[int, int, float | None, float | None]]:
    """A vessel's latency.csv: destination -> (sent, received, median, min). The vessel
    wrote it, so it is not trusted: a line that is not five well-formed fields is skipped."""
    rows = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) != 5 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        try:
            median = float(parts[3]) if parts[3] else None
            least = float(parts[4]) if parts[4] else None
        except ValueError:
            continue
        if any(v is not None and not 0 <= v < 1e9 for v in (median, least)):
            continue
        rows[parts[0]] = (int(parts[1]), int(parts[2]), median, least)
    return rows


def pairs_of(endpoints: Sequence[str], measured: dict[str, str | None],
             errors: dict[str, str]) -> list[Pair]:
    """One Pair per ordered pair of ``endpoints`` (pure): from each source's latency.csv
    text, or the source's error when it gave none."""
    out = []
    for source in endpoints:
        text = measured.get(source)
        rows = read_probe_csv(text) if text is not None else {}
        for destination in endpoints:
            if destination == source:
                continue
            if text is None:
                out.append(Pair(source, destination, status=f"no results: {errors[source]}"))
                continue
            sent, received, median, least = rows.get(destination, (0, 0, None, None))
            status = "ok" if received else ("no answer" if sent else "not probed")
            out.append(Pair(source, destination, sent, received, median, least, status))
    return out


def write_csv(path: Path, pairs: Sequence[Pair]) -> None:
    with path.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(FIELDS)
        for p in pairs:
            writer.writerow([p.source, p.destination, p.sent, p.received,
                             "" if p.median_ms is None else f"{p.median_ms:.3f}",
                             "" if p.min_ms is None else f"{p.min_ms:.3f}", p.status])


def draw_heatmap(path: Path, endpoints: Sequence[str], pairs: Sequence[Pair], title: str) -> None:
    """The median round trips as a source x destination heat map (crossed: no answer)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = {e: i for i, e in enumerate(endpoints)}
    size = len(endpoints)
    grid = [[math.nan] * size for _ in range(size)]
    for p in pairs:
        if p.median_ms is not None:
            grid[index[p.source]][index[p.destination]] = p.median_ms
    inches = max(6.0, 0.22 * size + 2)
    fig, ax = plt.subplots(figsize=(inches + 1.5, inches))
    image = ax.imshow(grid, cmap="viridis", interpolation="nearest")
    for p in pairs:
        if p.median_ms is None:
            ax.plot(index[p.destination], index[p.source], marker="x", color="red",
                    markersize=max(3, 200 / size))
    labels = [f"{i}" for i in range(size)]
    ax.set_xticks(range(size), labels, fontsize=6)
    ax.set_yticks(range(size), labels, fontsize=6)
    ax.set_xlabel("destination vessel")
    ax.set_ylabel("source vessel")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="median round trip (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def find(exp: BlockingExperiment, expect: int, seconds: float) -> list[Vessel]:
    """The identity's vessels; with ``expect``, look again until that many appear."""
    deadline = time.monotonic() + seconds
    while True:
        vessels = exp.find_vessels()
        if len(vessels) >= expect or time.monotonic() > deadline:
            return sorted(vessels, key=lambda v: (v.host, v.port, v.name))
        time.sleep(1)


async def messport(client: NodeClient, job: Job) -> int:
    ports = sorted((await client.get_vessel_resources(job.vessel)).ports("messport"))
    if not ports:
        raise ValueError("the vessel has no messport (UDP port) in its grant")
    return ports[0]


def await_complete(exp: BlockingExperiment, vessels: Sequence[Vessel], seconds: float) -> set[str]:
    """Follow the probes' logs until each logged "complete" (or ``seconds`` passed)."""
    deadline = time.monotonic() + seconds
    complete: set[str] = set()
    while len(complete) < len(vessels) and time.monotonic() < deadline:
        time.sleep(1)
        for r in exp.read_logs(vessels):
            if r.ok and "complete" in r.value:
                complete.add(r.target)
    return complete


def experiment(exp: BlockingExperiment, out: Path, seconds: float, expect: int) -> list[Pair]:
    """Deploy, run and collect; write OUT/latency.csv and OUT/latency.png."""
    start = time.monotonic()
    vessels = find(exp, expect, 60)
    print(f"{len(vessels)} vessels")
    granted = exp.do(vessels, messport)
    for r in granted:
        if not r.ok:
            print(f"  {r.target}: {r.error}")
    ports = {r.target: r.value for r in granted if r.ok}
    vessels = [v for v in vessels if v.address in ports]
    endpoints = [endpoint(v, ports[v.address]) for v in vessels]
    peers = "".join(f"{e.rsplit(':', 1)[0]} {e.rsplit(':', 1)[1]}\n" for e in endpoints).encode()
    exp.upload(vessels, "peers.txt", peers)
    started = exp.run(vessels, PROBE, lambda v: [v.host, str(ports[v.address]),
                                                 f"{seconds + 30:g}"])
    errors = {endpoint(v, ports[v.address]): r.error or "" for v, r in zip(vessels, started, strict=True)
              if not r.ok}
    running = [v for v, r in zip(vessels, started, strict=True) if r.ok]
    print(f"probing from {len(running)} vessels (at most {seconds:g} s)")
    complete = await_complete(exp, running, seconds)
    print(f"{len(complete)} of {len(running)} vessels had every peer answer; stopping the probes")
    exp.upload(running, "stop.txt", b"")
    for v, r in zip(running, exp.wait(running, timeout=60), strict=True):
        if not r.ok:
            errors[endpoint(v, ports[v.address])] = r.error or r.status
    measured: dict[str, str | None] = {}
    for v, r in zip(running, exp.download(running, "latency.csv"), strict=True):
        key = endpoint(v, ports[v.address])
        if r.ok and key not in errors:
            measured[key] = r.value.decode()
        else:
            errors.setdefault(key, r.error or "no latency.csv")
    pairs = pairs_of(endpoints, measured, errors)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "latency.csv", pairs)
    answered = sum(1 for p in pairs if p.median_ms is not None)
    elapsed = time.monotonic() - start
    picture = f"{out}/latency.png"
    try:
        draw_heatmap(out / "latency.png", endpoints, pairs,
                     f"all-pairs UDP round trip, {len(endpoints)} vessels: "
                     f"{answered} of {len(pairs)} pairs answered")
    except ImportError:  # the CSV is there; the picture needs the optional extra
        picture = "no heat map: matplotlib is missing (pip install -e '.[experiments]')"
    print(f"{len(pairs)} pairs, {answered} answered, {len(errors)} vessels without results; "
          f"{elapsed:.1f} s -> {out}/latency.csv, {picture}")
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--testbed", type=Path, help="a seattle-testbed directory (its demo key)")
    parser.add_argument("--key", help="identity NAME (NAME.privatekey) or path")
    parser.add_argument("--keys", type=Path, help="directory of the key files")
    parser.add_argument("--bootstrap", help="DHT peer HOST:PORT")
    parser.add_argument("--out", type=Path, default=Path("allpairs-results"))
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="stop probing after this long even if some pairs never answered")
    parser.add_argument("--expect", type=int, default=0,
                        help="wait (up to 60 s) until the DHT shows this many vessels")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per call")
    args = parser.parse_args(argv)
    if args.testbed is not None:
        data = json.loads((args.testbed / "testbed.json").read_text())
        identity = load_identity(Path(data["demo"]["privatekey"]))
        bootstrap = data["bootstrap"]
        expect = args.expect or len(data["nodes"]) * int(data["vessels_per_node"])
    elif args.key and args.bootstrap:
        identity = load_identity(args.key, args.keys)
        bootstrap, expect = args.bootstrap, args.expect
    else:
        parser.error("give --testbed DIR, or --key and --bootstrap")
    with BlockingExperiment(identity, bootstrap=[parse_hostport(bootstrap)],
                            timeout=args.timeout) as exp:
        pairs = experiment(exp, args.out, args.seconds, expect)
    return 0 if pairs else 1


if __name__ == "__main__":
    sys.exit(main())
