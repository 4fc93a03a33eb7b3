"""Run on the researcher's host by benchmarks/lab.py: relayed vs direct request latency.

    python benchmarks/relay_probe.py BOOTSTRAP KEYDIR N

Looks the demo key up, then sends N signed GetVessels to one public node (direct) and N to
one NATed node (through the first relay of its advert), one connection each; prints JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ holds files named like the packages they measure: keep it off the import path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import json
import statistics

import trio

from nodemanager.nat.dial import Route, open_route_client
from overlay import lookup_once, parse_hostport
from seattlecore import load_private


async def timed(route: Route, keys_dir: Path, count: int) -> tuple[list[float], str]:
    identity = load_private(keys_dir / "demo.privatekey")
    async with open_route_client(route, identity=identity) as client:
        await client.get_vessels()
        times = []
        for _ in range(count):
            start = trio.current_time()
            await client.get_vessels()
            times.append(trio.current_time() - start)
        return times, client.path


async def main(bootstrap: str, keys_dir: Path, count: int) -> None:
    key = load_private(keys_dir / "demo.privatekey").public
    found = await lookup_once(key, [parse_hostport(bootstrap)], timeout=20)
    direct = next(a for a in found.candidates if not a.relays)
    relayed = next(a for a in found.candidates if a.relays)
    out = {}
    for name, advert in (("direct", direct), ("relayed", relayed)):
        route = Route.from_advert(advert)
        times, path = await timed(route, keys_dir, count)
        out[name] = {"median_ms": statistics.median(times) * 1000, "path": path,
                     "node": advert.address}
    print(json.dumps(out))


if __name__ == "__main__":
    trio.run(main, sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
