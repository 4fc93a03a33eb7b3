"""Program commands: ``start``, ``run``, ``stop``, ``reset`` and ``show log``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from nodemanager import NodeClient
from seash.client import Job, NodeResult, fan_out
from seash.commands import Args, Handler
from seash.executor import Executor
from seash.files import per_vessel_path, upload_to_target, write_local
from seash.parse import parse_positive

FOLLOW_INTERVAL = 0.5

VesselCall = Callable[[NodeClient, str], Awaitable[str]]
"""A NodeClient method taking only the vessel name, e.g. ``NodeClient.stop_vessel``."""


async def _start(ex: Executor, command: str, program: str, argv: list[str]) -> None:
    async def op(client: NodeClient, job: Job) -> str:
        return await client.start_vessel(job.vessel, program, argv)

    await ex.fan(command, op, lambda status: f"started {program}: {status}")


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
    """A handler running ``call(client, vessel)`` on every target (``stop``, ``reset``)."""
    async def handler(ex: Executor, args: Args) -> None:
        async def op(client: NodeClient, job: Job) -> str:
            return await call(client, job.vessel)

        await ex.fan(command, op, lambda status: f"{done}: {status}")
    return handler


async def show_log(ex: Executor, args: Args) -> None:
    async def op(client: NodeClient, job: Job) -> str:
        return (await client.read_log(job.vessel)).decode("utf-8", "replace")

    if args.get("file") is not None:
        await _log_to_files(ex, args.need("file"))
        return
    follow = args.flag("--follow") or args.option("--for") is not None
    results = await ex.fan("log", op, _follow_text if follow else _log_text)
    if not follow:
        return
    seen = {r.target: str(r.value) for r in results if r.ok}
    limit = args.option("--for")
    with trio.move_on_after(parse_positive(limit, "--for") if limit else float("inf")):
        while True:
            await trio.sleep(FOLLOW_INTERVAL)
            for result in await _poll(ex, op):
                old = seen.get(result.target, "")
                text = str(result.value)
                if result.ok and text != old:
                    fresh = text[len(old):] if text.startswith(old) else text
                    seen[result.target] = text
                    ex.reporter.result(result, "\n" + fresh.rstrip("\n"))


async def _log_to_files(ex: Executor, local: str) -> None:
    async def op(client: NodeClient, job: Job) -> str:
        data = await client.read_log(job.vessel)
        path = per_vessel_path(local, job)
        await write_local(path, data)
        return f"{len(data)} bytes -> {path}"

    await ex.fan("log", op, str)


def _log_text(text: object) -> str:
    body = str(text).rstrip("\n")
    return "\n" + body if body else "(log is empty)"


def _follow_text(text: object) -> str | None:
    body = str(text).rstrip("\n")
    return "\n" + body if body else None


async def _poll(ex: Executor, op: Callable[[NodeClient, Job], Awaitable[str]]) -> list[NodeResult]:
    s = ex.session
    return await fan_out(ex.pool, ex.jobs(), op, identity=s.signing_key(),
                         limiter=trio.CapacityLimiter(s.settings.concurrency),
                         timeout=s.settings.timeout)
