"""The donor's controls after install: ``pause``, ``resume``, ``share``, ``policy``, ``ui``.

None of them reinstalls. ``pause``/``resume``/``policy`` change ``STATE/donor.json``, which
the running node manager reads within a quarter of a second (nodemanager/donor/control.py).
``share PCT`` resizes the vessels in place through the node manager (or, when it is not
running, directly in its state database): one transaction, refused with the reason when a
vessel's files would not fit (nodemanager/donor/reshare.py).
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

from installer.donor.apply import read_record
from installer.donor.plan import Layout
from installer.errors import InstallError
from nodemanager.donor.control import load_policy, update_policy
from nodemanager.donor.policy import PolicyError
from nodemanager.donor.reshare import (
    FIXED,
    ReshareRefused,
    ReshareRequest,
    apply_reshare,
    read_result,
    write_request,
)
from nodemanager.node.files import VesselStore
from nodemanager.node.spec import STATE_FILE
from nodemanager.node.state import NodeState
from seattlecore import write_atomic

RESHARE_WAIT = 30.0
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> float:
    """``2h``, ``90m``, ``1h30m``, ``45s``, ``1d`` -> seconds (argparse type)."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"a duration like 2h, 30m or 1h30m, not {text!r}")
    d, h, m, s = (int(g or 0) for g in match.groups())
    seconds = float(d * 86400 + h * 3600 + m * 60 + s)
    if not 0 < seconds <= 30 * 86400:
        raise argparse.ArgumentTypeError("a pause lasts between 1 s and 30 days")
    return seconds


def _installed(args: argparse.Namespace) -> tuple[Layout, dict[str, Any]]:
    """The install at ``--prefix`` and its record; ``InstallError`` if nothing is installed."""
    prefix: Path = args.prefix.absolute()
    record = read_record(prefix)
    if record is None:
        raise InstallError(f"not installed in {prefix}")
    return Layout(prefix=prefix), record


def _state(args: argparse.Namespace) -> Path:
    return _installed(args)[0].state


def _policy_change(state: Path, **changes: Any) -> None:
    try:
        update_policy(state, **changes)
    except PolicyError as exc:
        raise InstallError(str(exc)) from exc


def cmd_pause(args: argparse.Namespace) -> int:
    state = _state(args)
    until = None if args.duration is None else time.time() + args.duration
    _policy_change(state, paused=True, paused_until=until)
    when = "until 'seattle-installer resume'" if until is None else \
        "until " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(until))
    print(f"vessels paused {when} (programs are frozen, not stopped)")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    _policy_change(_state(args), paused=False, paused_until=None)
    print("vessels resume (unless the schedule, the battery or a busy machine holds them)")
    return 0


POLICY_OPTIONS = {
    "busy_above": "--busy-above", "busy_below": "--busy-below", "busy_for": "--busy-for",
    "resume_after": "--resume-after", "in_use_share": "--in-use-share",
    "idle_share": "--idle-share", "idle_after": "--idle-after", "idle_cpu": "--idle-cpu",
    "net_send": "--net-send", "net_recv": "--net-recv",
}


def cmd_policy(args: argparse.Namespace) -> int:
    state = _state(args)
    changes: dict[str, Any] = {k: getattr(args, k) for k in POLICY_OPTIONS
                               if getattr(args, k) is not None}
    if args.no_busy:
        changes["busy_above"] = None
    if args.schedule is not None or args.clear_schedule:
        changes["schedule"] = [] if args.clear_schedule else args.schedule
    if args.on_battery is not None:
        changes["on_battery"] = args.on_battery == "run"
    if changes:
        _policy_change(state, **changes)
    try:
        policy = load_policy(state / "donor.json")
    except PolicyError as exc:
        raise InstallError(str(exc)) from exc
    print(json.dumps(policy.to_json(), indent=1))
    return 0


def cmd_share(args: argparse.Namespace) -> int:
    layout, record = _installed(args)
    old = float(record["percent"])
    request = ReshareRequest(secrets.token_hex(8), float(args.percent), old)
    if _node_running(layout):
        error = _ask_node(layout.state, request)
    else:
        error = _apply_offline(layout.state, request)
    if error is not None:
        raise InstallError(error)
    _update_record(layout, record, args.percent)
    print(f"now donating {args.percent} % (was {old:g} %); node key, vessels, users and files kept")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Print the link to the local page (with its token): open it in a browser on this machine."""
    layout, record = _installed(args)
    if not _node_running(layout):
        raise InstallError("the node manager is not running (seattle-installer status)")
    percent = float(record["percent"])
    _ask_node(layout.state, ReshareRequest(secrets.token_hex(8), percent, percent))  # the page shows it
    from nodemanager.donor.webui import link  # loads the web stack only for this command

    try:
        url = link(layout.state)
    except (OSError, ValueError) as exc:
        raise InstallError(f"the node manager serves no page (started with --no-ui?): {exc}") from exc
    print(url)
    print("open it in a browser on this machine; the link holds a secret token: do not share it")
    return 0


def _node_running(layout: Layout) -> bool:
    try:
        pid = int(layout.pid.read_text().strip())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


def _ask_node(state: Path, request: ReshareRequest) -> str | None:
    write_request(state, request)
    deadline = time.monotonic() + RESHARE_WAIT
    while time.monotonic() < deadline:
        result = read_result(state, request.id)
        if result is not None:
            return None if result.get("ok") else str(result.get("error"))
        time.sleep(0.1)
    return (f"the node manager did not answer within {RESHARE_WAIT:.0f} s; the request stays in "
            f"{state} and is carried out when it runs")


def _apply_offline(state: Path, request: ReshareRequest) -> str | None:
    with NodeState(state / STATE_FILE) as node:
        try:
            apply_reshare(node, VesselStore(state), request)
        except ReshareRefused as exc:
            return str(exc)
    return None


def _update_record(layout: Layout, record: dict[str, Any], percent: int) -> None:
    """The install record follows the node (what ``status`` prints)."""
    ratio = percent / float(record["percent"])
    for vessel in record["vessels"]:
        vessel["resources"] = {k: (v if k in FIXED or isinstance(v, list) else v * ratio)
                               for k, v in vessel["resources"].items()}
    record["percent"] = percent
    write_atomic(layout.record, json.dumps(record, indent=1).encode())


def add_control_parsers(sub: Any, boot_options: Any, subparser: Any, percent: Any) -> None:
    """``pause``, ``resume``, ``share``, ``policy`` (the caller adds ``--prefix``)."""
    pause = subparser(sub, "pause", help="donor: freeze every vessel (for a while, or until resume)",
                      description="donor: freeze every vessel's program (nothing is stopped)")
    boot_options(pause)
    pause.add_argument("--for", dest="duration", type=parse_duration, default=None,
                       metavar="DURATION", help="e.g. 2h, 30m, 1h30m (default: until resume)")
    boot_options(subparser(sub, "resume", help="donor: end a pause",
                           description="donor: end the pause made by 'pause'"))
    share = subparser(sub, "share", help="donor: donate PCT %% of the machine, in place",
                      description="donor: resize the donation, keeping the node key, vessels, "
                                  "users and files (a shrink that files would not fit is refused)")
    boot_options(share)
    share.add_argument("percent", type=percent, metavar="PCT", help="the new share, 1..100")
    policy = subparser(sub, "policy", help="donor: show or change when vessels run",
                       description="donor: show or change the policy (docs/donor.md)")
    boot_options(policy)
    for name, flag in POLICY_OPTIONS.items():
        policy.add_argument(flag, dest=name, type=float, default=None)
    policy.add_argument("--no-busy", action="store_true", help="never pause for a busy machine")
    policy.add_argument("--schedule", action="append", default=None, metavar="LINE",
                        help="a window when vessels do not run, e.g. 'Mon-Fri 09:00-18:00 off' "
                             "(repeatable; replaces the schedule)")
    policy.add_argument("--clear-schedule", action="store_true", help="no schedule windows")
    policy.add_argument("--on-battery", choices=("pause", "run"), default=None)
    boot_options(subparser(sub, "ui", help="donor: the link to this machine's local page",
                           description="donor: print the link (with its secret token) to the "
                                       "node manager's page on 127.0.0.1"))


CONTROL_COMMANDS = {"pause": cmd_pause, "resume": cmd_resume, "share": cmd_share,
                    "policy": cmd_policy, "ui": cmd_ui}
