"""Request handlers (pure): ``handle(verified, view, now) -> Outcome``.

Every operation is one entry in ``HANDLERS``. Authorization is decided here from the
persisted vessel keys (docs/seattle.md, Rights): public calls need nothing, user calls need the
owner or a user key, owner calls the owner key (JoinVessels: owner of both vessels).

Invariant (docs/seattle.md, Offcut, split and join): split and join conserve resources exactly,
``sum(vessels) + offcuts_held * offcut`` never changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from nodemanager import errors
from nodemanager.node.model import (
    Change,
    CreateVessel,
    DeleteFile,
    DestroyVessel,
    ListFiles,
    NodeView,
    NoteDialBack,
    Outcome,
    ReadFile,
    ReadLog,
    Reannounce,
    StartProgram,
    StopProgram,
    Vessel,
    WipeVessel,
    WriteFile,
)
from nodemanager.proto import messages as m
from nodemanager.proto.auth import Verified
from sandbox import (
    ResourceMathError,
    ResourceParseError,
    ResourceTable,
    join_resources,
    parse_resources,
    split_resources,
)
from seattlecore import PublicKey


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What a handler sees: the view, the vessels the request names, the requester, now."""

    view: NodeView
    vessels: tuple[Vessel, ...]
    requester: PublicKey | None
    now: float


Handler = Callable[[Any, Context], Outcome]


def authorize(verified: Verified, view: NodeView) -> tuple[Vessel, ...]:
    """Look up the vessels the request names and check the requester's right on each."""
    request = verified.request
    found = []
    for name in request.vessels:
        vessel = view.vessels.get(name)
        if vessel is None:
            raise errors.NoSuchVessel(f"no vessel named {name!r} on this node")
        found.append(vessel)
    for vessel in found:
        if request.right == "user" and not vessel.may_use(verified.requester):
            raise errors.Forbidden(f"{request.op}: requester is not owner or user of {vessel.name}")
        if request.right == "owner" and verified.requester != vessel.owner:
            raise errors.Forbidden(f"{request.op}: requester is not the owner of {vessel.name}")
    return tuple(found)


def handle(verified: Verified, view: NodeView, now: float) -> Outcome:
    """Decide the outcome of an authenticated request; raise a RequestError to refuse it."""
    vessels = authorize(verified, view)
    handler = HANDLERS[type(verified.request)]
    context = Context(view=view, vessels=vessels, requester=verified.requester, now=now)
    return handler(verified.request, context)


# ---- public calls ----

def vessel_info(view: NodeView, vessel: Vessel) -> dict[str, object]:
    live = view.status_of(vessel.name)
    program, args = view.programs.get(vessel.name, (None, ()))
    return {
        "name": vessel.name, "status": live.status, "exit_reason": live.exit_reason,
        "exit_code": live.exit_code, "advertise": vessel.advertise, "owner": vessel.owner.raw,
        "owner_info": vessel.owner_info, "users": [key.raw for key in vessel.users],
        "usage": dict(live.usage), "program": program, "args": list(args),
        "paused": live.paused,
    }


def get_vessels(request: m.GetVessels, ctx: Context) -> Outcome:
    view = ctx.view
    vessels = [vessel_info(view, view.vessels[name]) for name in sorted(view.vessels, key=_order)]
    return Outcome(result={"version": view.version, "node": view.node.raw, "vessels": vessels})


def _order(name: str) -> tuple[int, str]:
    digits = name[1:]
    return (int(digits), name) if name[:1] == "v" and digits.isdigit() else (1 << 62, name)


def resources_result(table: ResourceTable) -> dict[str, object]:
    return {"resources": table.as_dict()}


def get_vessel_resources(request: m.GetVesselResources, ctx: Context) -> Outcome:
    return Outcome(result=resources_result(ctx.vessels[0].resources))


def get_offcut_resources(request: m.GetOffcutResources, ctx: Context) -> Outcome:
    result = resources_result(ctx.view.offcut)
    result["held"] = ctx.view.offcuts_held
    return Outcome(result=result)


def get_node_status(request: m.GetNodeStatus, ctx: Context) -> Outcome:
    view = ctx.view
    running = sum(1 for name in view.vessels if view.status_of(name).status == "Started")
    result: dict[str, object] = {
        "version": view.version, "protocol": m.PROTOCOL_VERSION,
        "revision": m.PROTOCOL_REVISION, "node": view.node.raw,
        "uptime": max(0.0, ctx.now - view.started_at), "vessels": len(view.vessels),
        "running": running, "load": list(view.load), **port_status(view),
    }
    if view.updates is not None:
        result["updates"] = dict(view.updates)
    if view.reachability is not None:
        result["reachability"] = dict(view.reachability)
    for name, value in view.extras.items():
        result.setdefault(name, value)
    return Outcome(result=result)


def dial_back(request: m.DialBack, ctx: Context) -> Outcome:
    """A peer dialled us back for a reachability test (protocol section 13)."""
    return Outcome(result={}, effects=(NoteDialBack(token=request.token),))


def port_status(view: NodeView) -> dict[str, object]:
    """GetNodeStatus's ``limits`` and ``connections`` maps (docs/protocol.md §10)."""
    if view.port_limits is None or view.port_stats is None:
        return {}
    return {"limits": view.port_limits.as_dict(), "connections": view.port_stats.as_dict()}


# ---- user calls ----

def _require_stopped(ctx: Context, what: str) -> None:
    for vessel in ctx.vessels:
        if ctx.view.status_of(vessel.name).status == "Started":
            raise errors.VesselBusy(f"{what}: vessel {vessel.name} is running; stop it first")


def start_vessel(request: m.StartVessel, ctx: Context) -> Outcome:
    _require_stopped(ctx, "StartVessel")
    vessel = ctx.vessels[0]
    effect = StartProgram(vessel=vessel.name, program=request.program, args=request.args,
                          resources=vessel.resources)
    return Outcome(effects=(effect,))


def stop_vessel(request: m.StopVessel, ctx: Context) -> Outcome:
    if ctx.view.status_of(request.vessel).status != "Started":
        raise errors.VesselNotRunning(f"vessel {request.vessel} is not running")
    return Outcome(effects=(StopProgram(vessel=request.vessel),))


def reset_vessel(request: m.ResetVessel, ctx: Context) -> Outcome:
    fresh = replace(ctx.vessels[0], status="Fresh", exit_reason=None, exit_code=None)
    return Outcome(change=Change(put=(fresh,)), effects=(WipeVessel(vessel=fresh.name),),
                   result={"status": "Fresh"})


def add_file(request: m.AddFileToVessel, ctx: Context) -> Outcome:
    quota = int(ctx.vessels[0].resources["diskused"])
    return Outcome(effects=(WriteFile(vessel=request.vessel, filename=request.filename,
                                      data=request.data, quota=quota),))


def retrieve_file(request: m.RetrieveFileFromVessel, ctx: Context) -> Outcome:
    return Outcome(effects=(ReadFile(vessel=request.vessel, filename=request.filename),))


def list_files(request: m.ListFilesInVessel, ctx: Context) -> Outcome:
    return Outcome(effects=(ListFiles(vessel=request.vessel),))


def delete_file(request: m.DeleteFileInVessel, ctx: Context) -> Outcome:
    return Outcome(effects=(DeleteFile(vessel=request.vessel, filename=request.filename),))


def read_log(request: m.ReadVesselLog, ctx: Context) -> Outcome:
    return Outcome(effects=(ReadLog(vessel=request.vessel, since=request.since),))


# ---- owner calls ----

def _changed(vessel: Vessel, **fields: Any) -> Outcome:
    updated = replace(vessel, **fields)
    return Outcome(change=Change(put=(updated,)), effects=(Reannounce(),))


def change_owner(request: m.ChangeOwner, ctx: Context) -> Outcome:
    return _changed(ctx.vessels[0], owner=request.owner, owner_info="", advertise=True)


def change_users(request: m.ChangeUsers, ctx: Context) -> Outcome:
    return _changed(ctx.vessels[0], users=request.users)


def change_owner_info(request: m.ChangeOwnerInformation, ctx: Context) -> Outcome:
    updated = replace(ctx.vessels[0], owner_info=request.info)
    return Outcome(change=Change(put=(updated,)))


def change_advertise(request: m.ChangeAdvertise, ctx: Context) -> Outcome:
    return _changed(ctx.vessels[0], advertise=request.advertise)


def _parse_table(text: str) -> ResourceTable:
    try:
        return parse_resources(text)
    except ResourceParseError as exc:
        raise errors.BadResources(f"resource text: {exc}") from exc


def _new_vessel(template: Vessel, name: str, resources: ResourceTable) -> Vessel:
    return Vessel(name=name, owner=template.owner, users=template.users,
                  owner_info=template.owner_info, advertise=template.advertise,
                  resources=resources)


def split_vessel(request: m.SplitVessel, ctx: Context) -> Outcome:
    _require_stopped(ctx, "SplitVessel")
    original = ctx.vessels[0]
    try:
        leftover, wanted = split_resources(
            original.resources, _parse_table(request.resources), ctx.view.offcut
        )
    except ResourceMathError as exc:
        raise errors.BadResources(str(exc)) from exc
    index = ctx.view.next_index
    first = _new_vessel(original, f"v{index}", leftover)
    second = _new_vessel(original, f"v{index + 1}", wanted)
    change = Change(put=(first, second), delete=(original.name,), next_index=index + 2,
                    offcuts_held=ctx.view.offcuts_held + 1)
    effects = (DestroyVessel(vessel=original.name), CreateVessel(vessel=first.name),
               CreateVessel(vessel=second.name), Reannounce())
    return Outcome(result={"vessels": [first.name, second.name]}, change=change, effects=effects)


def join_vessels(request: m.JoinVessels, ctx: Context) -> Outcome:
    if request.vessel1 == request.vessel2:
        raise errors.BadArguments("cannot join a vessel with itself")
    _require_stopped(ctx, "JoinVessels")
    first, second = ctx.vessels
    if ctx.view.offcuts_held < 1:
        raise errors.BadResources("no offcut is held by this node, so nothing can be joined")
    index = ctx.view.next_index
    joined = _new_vessel(first, f"v{index}",
                         join_resources(first.resources, second.resources, ctx.view.offcut))
    change = Change(put=(joined,), delete=(first.name, second.name), next_index=index + 1,
                    offcuts_held=ctx.view.offcuts_held - 1)
    effects = (DestroyVessel(vessel=first.name), DestroyVessel(vessel=second.name),
               CreateVessel(vessel=joined.name), Reannounce())
    return Outcome(result={"vessel": joined.name}, change=change, effects=effects)


HANDLERS: dict[type[m.Request], Handler] = {
    m.GetVessels: get_vessels,
    m.GetVesselResources: get_vessel_resources,
    m.GetOffcutResources: get_offcut_resources,
    m.GetNodeStatus: get_node_status,
    m.DialBack: dial_back,
    m.StartVessel: start_vessel,
    m.StopVessel: stop_vessel,
    m.ResetVessel: reset_vessel,
    m.AddFileToVessel: add_file,
    m.RetrieveFileFromVessel: retrieve_file,
    m.ListFilesInVessel: list_files,
    m.DeleteFileInVessel: delete_file,
    m.ReadVesselLog: read_log,
    m.ChangeOwner: change_owner,
    m.ChangeUsers: change_users,
    m.ChangeOwnerInformation: change_owner_info,
    m.ChangeAdvertise: change_advertise,
    m.SplitVessel: split_vessel,
    m.JoinVessels: join_vessels,
}
