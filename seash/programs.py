"""Program commands: ``start``, ``run``, ``stop``, ``reset`` and ``wait``.

``start``/``run`` succeed for a vessel only once its program compiled and runs (the node
answers StartVessel then); a program that does not compile fails for that vessel with the
compile errors. ``wait`` lets a script block until the programs have ended.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from nodemanager import NodeClient
from nodemanager.errors import VesselNotRunning
from seash.client import Job
from seash.commands import Args, Handler
from seash.discovery import node_info_op
from seash.executor import Executor
from seash.experiment.model import ending
from seash.files import upload_to_target
from seash.parse import parse_positive

WAIT_INTERVAL = 0.5

VesselCall = Callable[[NodeClient, str], Awaitable[str]]
"""A NodeClient method taking only the vessel name, e.g. ``NodeClient.reset_vessel``."""


async def _start(ex: Executor, command: str, program: str, argv: list[str]) -> None:
    async def op(client: NodeClient, job: Job) -> str:
        return await client.start_vessel(job.vessel, program, argv)

    await ex.fan(command, op, lambda status: f"started {' '.join([program, *argv])}: {status}")


async def start(ex: Executor, args: Args) -> None:
    await _start(ex, "start", args.need("program"), args.many("args"))


async def run(ex: Executor, args: Args) -> None:
    local = args.need("program")
    remote = Path(local).name
    uploaded = await upload_to_target(ex, "run", local, remote)
    if not any(r.ok for r in uploaded):
        return
    with ex.session.using(target="rungood"):
        await _start(ex, "run", remote, args.many("args"))


def vessel_command(command: str, call: VesselCall, done: str) -> Handler:
    """A handler running ``call(client, vessel)`` on every target (``reset``)."""
    async def handler(ex: Executor, args: Args) -> None:
        async def op(client: NodeClient, job: Job) -> str:
            return await call(client, job.vessel)

        await ex.fan(command, op, lambda status: f"{done}: {status}")
    return handler


async def stop(ex: Executor, args: Args) -> None:
    """StopVessel; a vessel with nothing running is fine (its program already ended)."""
    async def op(client: NodeClient, job: Job) -> str:
        try:
            return f"stopped: {await client.stop_vessel(job.vessel)}"
        except VesselNotRunning:
            return "not running (nothing to stop)"

    await ex.fan("stop", op, str)


async def wait(ex: Executor, args: Args) -> None:
    """Until no target's program runs (at most ``--for`` seconds); then one row per target.

    A row fails when its program ended with an error or was killed, and times out when it
    still runs at the deadline, so a script's exit status says whether all went well.
    """
    limit = args.option("--for")
    seconds = parse_positive(limit, "--for") if limit else float("inf")
    start = trio.current_time()
    results = await ex.gather(node_info_op())
    with trio.move_on_after(seconds):
        while any(r.ok and r.value.status == "Started" and not r.value.paused for r in results):
            await trio.sleep(WAIT_INTERVAL)
            results = await ex.gather(node_info_op())
    ex.reporter.start("wait", len(results))
    outcomes = [ending(r, seconds if limit else None) for r in results]
    for outcome in outcomes:
        ex.reporter.result(outcome, outcome.value)
    ex.conclude("wait", outcomes, start)
