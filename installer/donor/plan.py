"""Compute what an install or uninstall must do (pure): the ``InstallPlan``.

Inputs are a verified bundle, a measured ``MachineProfile``, the donor's options and what is
already there (``Current``); the output is a list of steps that ``apply.py`` performs. Because
the plan only contains the steps still missing, applying a plan twice is a no-op.

Resource rule (docs/seattle.md, Installers): ``donated = maximum * percent/100`` (``events`` fixed at 500
per node); one offcut is paid per vessel; the rest is cut into ten 10 % chunks and a vessel with
p % gets p/10 chunks, plus 10 ports per chunk (``base_port + 10k .. +9``) as messport/connport.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from installer.donor.service import BootEntry
from installer.donor.software import (
    BuildVersion,
    KeepWheels,
    SoftwareLayout,
    SwitchVersion,
    launcher_argv,
    shim_text,
)
from installer.errors import AlreadyInstalled, InstallError, InsufficientResources, NotInstalled
from installer.planner.bundle import OpenedBundle
from installer.planner.spec import STEP, VesselShare
from sandbox import DEFAULT_OFFCUT, ResourceMathError, ResourceTable
from sandbox.resources import NUMERIC

EVENTS_PER_NODE = 500
BASE_PORT = 63100
PORTS_PER_CHUNK = 10
DEFAULT_RATES: Mapping[str, float] = {
    "random": 200_000, "filewrite": 1_200_000, "fileread": 1_200_000,
    "netsend": 500_000, "netrecv": 500_000, "lograte": 1_500_000,
    "loopsend": 50_000_000, "looprecv": 50_000_000,
}
"""Seattle's DEFAULT_MAX_RESOURCE_DICT for what is not measured."""

RECORD = "installer.json"
SPEC = "vessels.json"
SCRIPT = "start.sh"
PID = "nodemanager.pid"
OUTPUT = "node.out"
STATE = "state"


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineProfile:
    """What the probes measured (``measure.py``)."""

    cores: int
    memory: int
    """Total RAM, bytes."""
    disk_free: int
    """Free bytes on the prefix's file system."""
    fd_limit: int
    cpu_score: float = 0.0
    """Short CPU benchmark: sha256 MB/s on one core (informational)."""
    random_rate: float = DEFAULT_RATES["random"]
    """Measured ``os.urandom`` bytes/s."""


def max_resources(machine: MachineProfile) -> ResourceTable:
    """The whole machine as one resource table (before the donor's percent)."""
    values = dict(DEFAULT_RATES)
    values["random"] = min(machine.random_rate, DEFAULT_RATES["random"])
    third = max(machine.fd_limit // 3, 0)
    values.update(cpu=float(machine.cores), memory=machine.memory, diskused=machine.disk_free,
                  events=EVENTS_PER_NODE, filesopened=third, insockets=third, outsockets=third)
    return ResourceTable(values)


def donated_resources(maximum: ResourceTable, percent: float) -> ResourceTable:
    """``maximum * percent/100``; ``events`` stays fixed per node (Seattle's rule)."""
    if not 0 < percent <= 100:
        raise InstallError(f"--percent must be in (0, 100], got {percent}")
    values = {kind: maximum[kind] * percent / 100 for kind in NUMERIC}
    values["events"] = maximum["events"]
    return ResourceTable(values)


def vessel_tables(shares: Sequence[VesselShare], donated: ResourceTable,
                  offcut: ResourceTable = DEFAULT_OFFCUT,
                  base_port: int = BASE_PORT) -> tuple[ResourceTable, ...]:
    """Cut ``donated`` into one table per share, after paying one offcut per vessel."""
    rest = donated
    try:
        for _ in shares:
            rest = rest.minus(offcut, what="donation too small for the offcuts")
    except ResourceMathError as exc:
        raise InsufficientResources(f"{exc}; donate a larger percent or plan fewer vessels") from exc
    chunk = {kind: rest[kind] / (100 // STEP) for kind in NUMERIC}
    tables = []
    first = 0
    for share in shares:
        ports = frozenset(range(base_port + PORTS_PER_CHUNK * first,
                                base_port + PORTS_PER_CHUNK * (first + share.chunks)))
        tables.append(ResourceTable({k: v * share.chunks for k, v in chunk.items()}, ports, ports))
        first += share.chunks
    return tuple(tables)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallOptions:
    """The donor's choices."""

    prefix: Path
    percent: int = 10
    host: str = "0.0.0.0"
    port: int = 0
    dht_port: int = 0
    advertise_host: str | None = None
    sandbox: bool = True
    relay: bool = True
    """Relay for donors behind NAT (``--no-relay`` turns it off; docs/nat.md)."""
    relay_limits: tuple[str, ...] = ()
    """``NAME=VALUE`` relay limits passed on as ``--relay-limit``."""
    python: str = "python3"
    launcher_python: str | None = None
    """Managed installs (self-contained bundles): the base interpreter that runs the launcher;
    the node then runs from ``PREFIX/current`` (installer/donor/software.py)."""
    update_interval: float | None = None
    """Managed installs with a TUF root: seconds between update checks (jittered)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """Where things live in a prefix."""

    prefix: Path

    @property
    def record(self) -> Path:
        return self.prefix / RECORD

    @property
    def spec(self) -> Path:
        return self.prefix / SPEC

    @property
    def script(self) -> Path:
        return self.prefix / SCRIPT

    @property
    def pid(self) -> Path:
        return self.prefix / PID

    @property
    def output(self) -> Path:
        return self.prefix / OUTPUT

    @property
    def state(self) -> Path:
        return self.prefix / STATE

    @property
    def marker(self) -> str:
        """Found in the command line of this prefix's node manager (and its start.sh)."""
        return str(self.prefix) + os.sep


@dataclass(frozen=True, slots=True, kw_only=True)
class Current:
    """What is already installed (observed by ``apply.observe``)."""

    record: Mapping[str, Any] | None = None
    state_ready: bool = False
    running_pid: int | None = None
    boot_entry: bool = False


# ---- steps -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WriteFile:
    path: Path
    data: bytes
    mode: int = 0o644

    def describe(self) -> str:
        return f"write {self.path} ({len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class InitNode:
    state: Path
    spec: Path
    python: str

    def describe(self) -> str:
        return f"create the node key and vessels in {self.state}"


@dataclass(frozen=True, slots=True)
class StartNode:
    script: Path
    pid_file: Path
    output: Path
    state: Path

    def describe(self) -> str:
        return f"start the node manager ({self.script}), pid in {self.pid_file}"


@dataclass(frozen=True, slots=True)
class StopNode:
    pid: int
    marker: str

    def describe(self) -> str:
        return f"stop the node manager (pid {self.pid})"


@dataclass(frozen=True, slots=True)
class AddBootEntry:
    entry: BootEntry

    def describe(self) -> str:
        return f"add {self.entry.describe()}"


@dataclass(frozen=True, slots=True)
class RemoveBootEntry:
    entry: BootEntry

    def describe(self) -> str:
        return f"remove {self.entry.describe()}"


@dataclass(frozen=True, slots=True)
class RemoveTree:
    path: Path

    def describe(self) -> str:
        return f"delete {self.path} and everything in it"


Step = (WriteFile | InitNode | StartNode | StopNode | AddBootEntry | RemoveBootEntry | RemoveTree
        | BuildVersion | SwitchVersion | KeepWheels)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallPlan:
    """The steps still to do, and what the node donates (for the report)."""

    action: Literal["install", "uninstall"]
    prefix: Path
    steps: tuple[Step, ...]
    record: Mapping[str, Any] = field(default_factory=dict)
    boot: BootEntry | None = None

    def render(self) -> str:
        """Human-readable plan (``--dry-run`` output)."""
        lines = [f"{self.action} plan for {self.prefix}:"]
        lines += [f"  {i}. {step.describe()}" for i, step in enumerate(self.steps, 1)]
        if not self.steps:
            lines.append("  nothing to do (already in that state)")
        if self.boot is not None and self.boot.kind == "none":
            lines.append(f"  note: {self.boot.describe()}")
        if self.record:
            lines.append(render_donation(self.record))
        return "\n".join(lines)


def render_donation(record: Mapping[str, Any]) -> str:
    """The donation summary printed after install and by ``status``."""
    lines = [f"donating {record['percent']} % of this machine in {len(record['vessels'])} vessels "
             f"(bundle {record['build_id'][:12]}, planner {record['planner'][:16]}...):"]
    for vessel in record["vessels"]:
        res = vessel["resources"]
        lines.append(
            f"  {vessel['name']:<4} {vessel['percent']:>3} %  cpu {res['cpu']:.3f}  "
            f"memory {int(res['memory']) // 1_000_000} MB  disk {int(res['diskused']) // 1_000_000} MB  "
            f"ports {min(res['connport'])}-{max(res['connport'])}  owner {vessel['owner'][:16]}..."
            + ("  (reserved)" if vessel["reserved"] else "")
            + ("  (community pool)" if vessel.get("pool") else "")
        )
    return "\n".join(lines)


def start_script(layout: Layout, options: InstallOptions, bootstrap: Sequence[str]) -> str:
    """``start.sh``: what both the installer and the boot entry run."""
    argv = [options.python, "-m", "nodemanager", "--state", str(layout.state),
            "--listen", f"{options.host}:{options.port}"]
    for peer in bootstrap:
        argv += ["--bootstrap", peer]
    if options.dht_port:
        argv += ["--dht-port", str(options.dht_port)]
    if options.advertise_host:
        argv += ["--advertise-host", options.advertise_host]
    if not options.sandbox:
        argv.append("--no-sandbox")
    if not options.relay:
        argv.append("--no-relay")
    for limit in options.relay_limits:
        argv += ["--relay-limit", limit]
    if options.launcher_python is not None:
        argv = launcher_argv(layout.prefix, options.launcher_python, argv[1:])
        if options.update_interval is not None:
            argv += ["--updates", str(SoftwareLayout(prefix=layout.prefix).updates),
                     "--update-interval", str(options.update_interval)]
    prefix = shlex.quote(str(layout.prefix))
    return (
        "#!/bin/sh\n"
        "# Seattle node manager start script, written by seattle-installer.\n"
        f"cd {prefix} || exit 0\n"
        f"[ -d {shlex.quote(str(layout.state))} ] || exit 0\n"
        f"echo $$ > {shlex.quote(str(layout.pid))}\n"
        f"exec {shlex.join(argv)} >>{shlex.quote(str(layout.output))} 2>&1\n"
    )


def install_record(bundle: OpenedBundle, options: InstallOptions,
                   tables: Sequence[ResourceTable], boot: BootEntry) -> dict[str, Any]:
    """What ``installer.json`` says about this installation."""
    manifest = bundle.manifest
    return {
        "bundle_sha256": bundle.digest, "build_id": manifest.build_id,
        "planner": manifest.planner.to_text(), "bootstrap": list(manifest.bootstrap),
        "percent": options.percent, "host": options.host, "port": options.port,
        "dht_port": options.dht_port, "sandbox": options.sandbox, "service": boot.kind,
        "active": True,
        "vessels": [
            {"name": f"v{i}", "percent": share.percent, "owner": share.owner.to_text(),
             "users": [u.to_text() for u in share.users], "reserved": share.reserved,
             "resources": table.as_dict(), **({"pool": True} if share.pool else {})}
            for i, (share, table) in enumerate(zip(manifest.vessels, tables, strict=True), 1)
        ],
    }


def node_spec(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``seattle-nodemanager init`` spec for the recorded vessels."""
    spec: dict[str, Any] = {
        "offcut": DEFAULT_OFFCUT.to_text(),
        "vessels": [{"name": v["name"], "pool": True, "resources": v["resources"]}
                    if v.get("pool") else
                    {"name": v["name"], "owner": v["owner"], "users": v["users"],
                     "resources": v["resources"]} for v in record["vessels"]],
    }
    if any(v.get("pool") for v in record["vessels"]):
        spec["pool"] = {"key": record["planner"]}  # the pool is named by its planner's key
    return spec


IDENTITY = ("bundle_sha256", "percent", "host", "port", "dht_port", "sandbox", "service")


def _same_install(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(old.get(key) == new.get(key) for key in IDENTITY)


def software_steps(prefix: Path, pyz: Path, version: str, *, launcher: bytes,
                   root: bytes | None) -> list[Step]:
    """A managed install's software: the version's venv, ``current``, launcher, shim, TUF root."""
    soft = SoftwareLayout(prefix=prefix)
    steps: list[Step] = [BuildVersion(pyz, prefix, version), SwitchVersion(prefix, version),
                         WriteFile(soft.launcher, launcher),
                         WriteFile(soft.shim, shim_text(prefix).encode(), 0o755)]
    if root is not None:
        steps += [WriteFile(soft.root, root), KeepWheels(pyz, prefix)]
    return steps


def plan_install(bundle: OpenedBundle, machine: MachineProfile, options: InstallOptions,
                 current: Current, boot: BootEntry, software: Sequence[Step] = ()) -> InstallPlan:
    """The steps to reach "installed, running, starts at boot" from ``current``."""
    layout = Layout(prefix=options.prefix)
    old = current.record
    if old is not None:
        wanted = {"bundle_sha256": bundle.digest, "percent": options.percent, "host": options.host,
                  "port": options.port, "dht_port": options.dht_port, "sandbox": options.sandbox,
                  "service": boot.kind}
        if not _same_install(old, wanted):
            what = ("a different bundle" if old.get("bundle_sha256") != bundle.digest
                    else "the same bundle with other options")
            raise AlreadyInstalled(f"{options.prefix} already holds {what}; run 'seattle-installer "
                                   f"uninstall --purge --prefix {shlex.quote(str(options.prefix))}' "
                                   "first")
        new = dict(old)  # the machine is not re-measured: the donation stays as recorded
    else:
        donated = donated_resources(max_resources(machine), options.percent)
        new = install_record(bundle, options, vessel_tables(bundle.manifest.vessels, donated), boot)
    record = new
    steps: list[Step] = []
    if old is None:
        script = start_script(layout, options, bundle.manifest.bootstrap)
        steps += list(software)
        steps += [WriteFile(layout.spec, _json(node_spec(new))),
                  WriteFile(layout.script, script.encode(), 0o755)]
    if not current.state_ready:
        steps.append(InitNode(layout.state, layout.spec, options.python))
    if old is None or not old.get("active", True):
        record["active"] = True
        steps.append(WriteFile(layout.record, _json(record)))
    if boot.kind != "none" and not current.boot_entry:
        steps.append(AddBootEntry(boot))
    if current.running_pid is None:
        steps.append(StartNode(layout.script, layout.pid, layout.output, layout.state))
    return InstallPlan(action="install", prefix=options.prefix, steps=tuple(steps),
                       record=record, boot=boot)


def plan_uninstall(prefix: Path, current: Current, boot: BootEntry, *, purge: bool) -> InstallPlan:
    """The steps to stop the node, drop the boot entry and (``purge``) delete the prefix."""
    layout = Layout(prefix=prefix)
    if current.record is None:
        raise NotInstalled(f"no installation in {prefix} (no {RECORD})")
    steps: list[Step] = []
    if current.running_pid is not None:
        steps.append(StopNode(current.running_pid, layout.marker))
    if boot.kind != "none" and current.boot_entry:
        steps.append(RemoveBootEntry(boot))
    if purge:
        steps.append(RemoveTree(prefix))
    elif current.record.get("active", True):
        steps.append(WriteFile(layout.record, _json({**current.record, "active": False})))
    return InstallPlan(action="uninstall", prefix=prefix, steps=tuple(steps), boot=boot)


def _json(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
