"""Group commands: ``add``, ``remove``, ``move`` and ``show groups`` (session state only)."""

from __future__ import annotations

from seash.commands import Args
from seash.errors import UsageError
from seash.executor import Executor
from seash.session import ALL, Session


def _size(s: Session, group: str) -> str:
    return f"group {group}: {len(s.groups[group])} vessels"


async def add(ex: Executor, args: Args) -> None:
    s = ex.session
    group = args.need("group")
    s.add_to_group(group, s.resolve(args.get("target")))
    ex.reporter.text(_size(s, group))


def _current_group(s: Session) -> str:
    if s.target not in s.groups:
        raise UsageError("give 'from GROUP' (the current target is not a named group)")
    return s.target


async def remove(ex: Executor, args: Args) -> None:
    s = ex.session
    group = args.get("group") or _current_group(s)
    if args.get("target") is None:
        s.delete_group(group)
        if s.target == group:
            s.target = ALL
        ex.reporter.text(f"removed group {group}")
        return
    s.remove_from_group(group, s.resolve(args.get("target")))
    ex.reporter.text(_size(s, group))


async def move(ex: Executor, args: Args) -> None:
    s = ex.session
    group = args.need("group")
    ids = s.resolve(args.need("target"))
    if s.target in s.groups:
        s.remove_from_group(s.target, ids)
    s.add_to_group(group, ids)
    ex.reporter.text(_size(s, group))


async def show_groups(ex: Executor, args: Args) -> None:
    rows = [[name, " ".join(f"%{n}" for n in ids) or "(empty)"]
            for name, ids in sorted(ex.session.groups.items())]
    ex.reporter.table("groups", ["group", "members"], rows)
