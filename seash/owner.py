"""Owner commands: ``set owner/users/ownerinfo/advertise``, ``split`` and ``join``.

Each ``set`` is one typed ``Change``: how to read its value from the arguments, which
NodeClient call applies it, and how the cached ``VesselInfo`` changes once a node accepted it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from nodemanager import NodeClient, VesselInfo
from seash.client import Job
from seash.commands import Args, Handler
from seash.errors import UsageError
from seash.executor import Executor
from seash.files import read_local
from seash.parse import parse_bool
from seattlecore import PublicKey

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Change(Generic[T]):
    """One ``set`` subcommand that changes vessels."""

    command: str
    value: Callable[[Executor, Args], T]
    apply: Callable[[NodeClient, str, T], Awaitable[None]]
    cache: Callable[[VesselInfo, T], VesselInfo]


def change_handler(change: Change[T]) -> Handler:
    """The handler of a ``set`` subcommand: apply on every target, then update the cache."""
    async def handler(ex: Executor, args: Args) -> None:
        value = change.value(ex, args)

        async def op(client: NodeClient, job: Job) -> None:
            await change.apply(client, job.vessel, value)

        results = await ex.fan(change.command, op, lambda _: "done")
        for result in results:
            number = int(result.target[1:])
            if result.ok and number in ex.session.info:
                ex.session.info[number] = change.cache(ex.session.info[number], value)
    return handler


def _owner(ex: Executor, args: Args) -> PublicKey:
    return ex.session.public_key(args.need("identity"))


def _users(ex: Executor, args: Args) -> tuple[PublicKey, ...]:
    return tuple(ex.session.public_key(word) for word in args.many("identity"))


SET_OWNER: Change[PublicKey] = Change(
    "setowner", _owner, NodeClient.change_owner, lambda info, key: dataclasses.replace(info, owner=key))
SET_USERS: Change[tuple[PublicKey, ...]] = Change(
    "setusers", _users, NodeClient.change_users, lambda info, keys: dataclasses.replace(info, users=keys))
SET_OWNERINFO: Change[str] = Change(
    "setownerinfo", lambda ex, args: args.get("text") or "", NodeClient.change_owner_info,
    lambda info, text: dataclasses.replace(info, owner_info=text))
SET_ADVERTISE: Change[bool] = Change(
    "setadvertise", lambda ex, args: parse_bool(args.need("flag")), NodeClient.change_advertise,
    lambda info, flag: dataclasses.replace(info, advertise=flag))


async def split(ex: Executor, args: Args) -> None:
    text = read_local(args.need("resourcefile")).decode("utf-8", "replace")

    async def op(client: NodeClient, job: Job) -> tuple[str, str]:
        return await client.split_vessel(job.vessel, text)

    results = await ex.fan("split", op, lambda pair: f"split into {pair[0]} and {pair[1]}")
    s = ex.session
    first: list[int] = []
    second: list[int] = []
    for result in results:
        if result.ok:
            old = int(result.target[1:])
            ref = s.vessels[old]
            s.forget_vessel(old)
            first.append(s.add_vessel(dataclasses.replace(ref, vessel=result.value[0])))
            second.append(s.add_vessel(dataclasses.replace(ref, vessel=result.value[1])))
    s.set_group("split1", first)
    s.set_group("split2", second)
    if first:
        ex.reporter.text(f"new vessels: split1 = {' '.join(f'%{n}' for n in first)}, "
                         f"split2 = {' '.join(f'%{n}' for n in second)}")


def _join_jobs(ex: Executor) -> tuple[list[Job], dict[tuple[str, int], list[int]]]:
    s = ex.session
    by_node: dict[tuple[str, int], list[int]] = {}
    for n in s.resolve():
        by_node.setdefault(s.vessels[n].node, []).append(n)
    jobs = []
    for (host, port), ids in by_node.items():
        if len(ids) > 1:
            names = ",".join(s.vessels[n].vessel for n in ids)
            jobs.append(Job(f"{host}:{port}", host, port, names, s.vessels[ids[0]].node_key))
    if not jobs:
        raise UsageError("join needs two or more vessels of the same node in the target")
    return jobs, by_node


async def join(ex: Executor, args: Args) -> None:
    s = ex.session
    jobs, by_node = _join_jobs(ex)

    async def op(client: NodeClient, job: Job) -> str:
        names = job.vessel.split(",")
        current = names[0]
        for name in names[1:]:
            current = await client.join_vessels(current, name)
        return current

    results = await ex.fan("join", op, lambda name: f"joined into {name}", jobs=jobs, groups=False)
    joined = []
    for job, result in zip(jobs, results, strict=True):
        if result.ok:
            ids = by_node[job.node]
            ref = s.vessels[ids[0]]
            for n in ids:
                s.forget_vessel(n)
            joined.append(s.add_vessel(dataclasses.replace(ref, vessel=result.value)))
    s.record_outcome("join", joined, [])
