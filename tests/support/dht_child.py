"""Child process for loopback tests: run several DHT nodes, each announcing one vessel.

argv: JSON config {"count", "bootstrap": [[host, port]...], "user": hex, "republish",
"ttl", "refresh"}. Prints one JSON line per node ({"port", "node_key"}) then "ready", and
runs until killed or stdin closes.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import AsyncExitStack

import trio

from overlay import Announcer, DhtConfig, dht_loop, open_dht_node
from seattlecore import KeyPair, PublicKey


async def main(cfg: dict[str, object]) -> None:
    user = PublicKey.from_text(str(cfg["user"]))
    boot = [tuple(a) for a in cfg["bootstrap"]]  # type: ignore[attr-defined]
    async with dht_loop(), trio.open_nursery() as nursery, AsyncExitStack() as stack:
        for _ in range(int(cfg["count"])):  # type: ignore[call-overload]
            config = DhtConfig(bootstrap=tuple(boot), refresh_interval=float(cfg["refresh"]))  # type: ignore[arg-type]
            node = await stack.enter_async_context(open_dht_node(config))
            if not boot:
                boot = [("127.0.0.1", node.port)]
            keys = KeyPair.generate()
            ann = Announcer(
                node,
                keys,
                f"127.0.0.1:{node.port}",
                republish_interval=float(cfg["republish"]),  # type: ignore[arg-type]
                ttl=float(cfg["ttl"]),
            )  # type: ignore[arg-type]
            ann.update([("v1", user)])
            await nursery.start(ann.run)
            print(json.dumps({"port": node.port, "node_key": keys.public.to_text()}), flush=True)
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        nursery.cancel_scope.cancel()  # the announcers stop; then the nodes close, inside out


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)
    trio.run(main, json.loads(sys.argv[1]))
