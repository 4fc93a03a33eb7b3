"""Vessel information: ``show resources``, ``show offcut``, the cached ``show info`` family
and ``show ip``.

``show info``, ``users``, ``owner``, ``ownerinfo`` and ``advertise`` print what the last
``list``/``update`` learnt (no network); ``show resources`` and ``show offcut`` ask the nodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from nodemanager import NodeClient, VesselInfo
from sandbox import ResourceTable
from seash.client import NODE_ONLY, Job
from seash.commands import Args
from seash.errors import SeashError
from seash.executor import Executor
from seash.files import write_local
from seash.session import VesselRef
from seattlecore import PublicKey

CachedRow = Callable[[VesselRef, VesselInfo], list[str]]


def _block(text: object) -> str:
    return "\n" + str(text).rstrip("\n")


def fold_ports(ports: Iterable[int]) -> str:
    """``[63100, 63101, 63102, 63105]`` -> ``"63100-63102, 63105"``."""
    runs: list[list[int]] = []
    for port in sorted(set(ports)):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def render_resources(table: ResourceTable) -> str:
    """A resource table as Seattle's ``resource KIND VALUE`` lines, port lists folded."""
    lines = [line for line in table.to_text().splitlines()
             if line.split()[1] not in ("messport", "connport")]
    for kind in ("messport", "connport"):
        if table.ports(kind):
            lines.append(f"resource {kind} {fold_ports(table.ports(kind))}")
    return "\n".join(lines)


async def show_resources(ex: Executor, args: Args) -> None:
    async def op(client: NodeClient, job: Job) -> str:
        return render_resources(await client.get_vessel_resources(job.vessel))

    await ex.fan("resources", op, _block)


def one_per_node(ex: Executor) -> list[Job]:
    """One node-wide job per node of the current target (target ``host:port``)."""
    jobs: dict[tuple[str, int], Job] = {}
    for job in ex.jobs():
        jobs.setdefault(job.node, dataclasses.replace(job, target=f"{job.host}:{job.port}",
                                                      vessel=NODE_ONLY))
    return list(jobs.values())


async def show_offcut(ex: Executor, args: Args) -> None:
    async def op(client: NodeClient, job: Job) -> str:
        return render_resources(await client.get_offcut_resources())

    await ex.fan("offcut", op, _block, jobs=one_per_node(ex), groups=False)


def _cached(ex: Executor, title: str, columns: list[str], row: CachedRow) -> None:
    s = ex.session
    rows = []
    for n in s.resolve():
        info = s.info.get(n)
        rows.append([f"%{n}", *(row(s.vessels[n], info) if info else ["? (run 'list')"])])
    ex.reporter.table(title, ["id", *columns], rows)


def key_names(ex: Executor, keys: Sequence[PublicKey]) -> str:
    """Loaded identities by name, other keys by their short form."""
    names = {i.public: i.name for i in ex.session.identities.values()}
    return " ".join(names.get(k, k.short()) for k in keys) or "(none)"


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


async def show_info(ex: Executor, args: Args) -> None:
    _cached(ex, "info", ["vessel", "status", "program", "owner", "users", "advertise", "ownerinfo",
                         "path"],
            lambda ref, v: [ref.address, v.status, " ".join([v.program, *v.args]) if v.program else "-",
                            key_names(ex, [v.owner]), key_names(ex, v.users), _on_off(v.advertise),
                            v.owner_info, ex.pool.path_of(ref.node)])


async def show_users(ex: Executor, args: Args) -> None:
    _cached(ex, "users", ["users"], lambda ref, v: [key_names(ex, v.users)])


async def show_owner(ex: Executor, args: Args) -> None:
    _cached(ex, "owner", ["owner"], lambda ref, v: [f"{key_names(ex, [v.owner])} {v.owner.to_text()}"])


async def show_ownerinfo(ex: Executor, args: Args) -> None:
    _cached(ex, "ownerinfo", ["ownerinfo"], lambda ref, v: [v.owner_info])


async def show_advertise(ex: Executor, args: Args) -> None:
    _cached(ex, "advertise", ["advertise"], lambda ref, v: [_on_off(v.advertise)])


async def show_ip(ex: Executor, args: Args) -> None:
    """The target's node addresses; ``show ip to FILE`` writes them, one per line, to FILE."""
    s = ex.session
    hosts = sorted({f"{s.vessels[n].host}:{s.vessels[n].port}" for n in s.resolve()})
    path = args.get("file")
    if path is None:
        ex.reporter.text("\n".join(hosts) or "(no vessels)")
        return
    try:
        await write_local(Path(path).expanduser(), "".join(f"{h}\n" for h in hosts).encode())
    except OSError as exc:
        raise SeashError(f"cannot write {path}: {exc.strerror}") from exc
    ex.reporter.text(f"{len(hosts)} node addresses -> {path}")
