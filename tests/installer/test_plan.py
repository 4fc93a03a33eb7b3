"""The pure plan: resource cuts (Seattle §6.3) and install/uninstall steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from installer import (
    AlreadyInstalled,
    Current,
    InstallError,
    InstallOptions,
    InsufficientResources,
    MachineProfile,
    NotInstalled,
    VesselShare,
    donated_resources,
    max_resources,
    open_bundle,
    plan_install,
    plan_uninstall,
    vessel_tables,
)
from installer.donor.plan import (
    AddBootEntry,
    InitNode,
    RemoveBootEntry,
    RemoveTree,
    StartNode,
    StopNode,
    WriteFile,
)
from installer.donor.service import BootEntry
from sandbox import DEFAULT_OFFCUT, total
from sandbox.resources import NUMERIC
from seattlecore import KeyPair
from tests.support.bundles import make_bundle

MACHINE = MachineProfile(cores=2, memory=8_000_000_000, disk_free=50_000_000_000, fd_limit=3000,
                         cpu_score=500.0, random_rate=5_000_000)
PLANNER, OWNER = KeyPair.generate(), KeyPair.generate()
BUNDLE = open_bundle(make_bundle(PLANNER, OWNER))


def shares(*percents: int) -> tuple[VesselShare, ...]:
    return tuple(VesselShare(percent=p, owner=OWNER.public) for p in percents)


def test_max_resources_from_machine() -> None:
    table = max_resources(MACHINE)
    assert table["cpu"] == 2.0 and table["memory"] == 8e9 and table["diskused"] == 5e10
    assert table["filesopened"] == table["insockets"] == table["outsockets"] == 1000
    assert table["events"] == 500
    assert table["random"] == 200_000  # capped at Seattle's default


def test_donated_keeps_events_fixed() -> None:
    donated = donated_resources(max_resources(MACHINE), 10)
    assert donated["cpu"] == pytest.approx(0.2)
    assert donated["memory"] == 800_000_000
    assert donated["events"] == 500
    with pytest.raises(InstallError):
        donated_resources(max_resources(MACHINE), 0)


def test_vessels_get_chunks_ports_and_pay_offcuts() -> None:
    donated = donated_resources(max_resources(MACHINE), 10)
    tables = vessel_tables(shares(30, 50, 20), donated)
    rest_cpu = donated["cpu"] - 3 * DEFAULT_OFFCUT["cpu"]
    assert [t["cpu"] for t in tables] == pytest.approx([rest_cpu * 0.3, rest_cpu * 0.5, rest_cpu * 0.2])
    assert tables[0].connport == frozenset(range(63100, 63130))
    assert tables[1].messport == frozenset(range(63130, 63180))
    assert tables[2].connport == frozenset(range(63180, 63200))


@given(st.lists(st.sampled_from([10, 20, 30, 40, 50]), min_size=1, max_size=10),
       st.integers(min_value=1, max_value=100))
def test_cut_never_exceeds_the_donation(percents: list[int], percent: int) -> None:
    if sum(percents) > 100:
        percents = [10] * min(len(percents), 10)
    spec = shares(*percents)
    donated = donated_resources(max_resources(MACHINE), percent)
    try:
        tables = vessel_tables(spec, donated)
    except InsufficientResources:
        return
    used = total([*tables, *([DEFAULT_OFFCUT] * len(spec))])
    for kind in NUMERIC:
        assert used[kind] <= donated[kind] + 1e-6


def test_too_small_donation_refused() -> None:
    tiny = MachineProfile(cores=1, memory=10_000_000, disk_free=10**9, fd_limit=30)
    donated = donated_resources(max_resources(tiny), 1)
    with pytest.raises(InsufficientResources, match="larger percent"):
        vessel_tables(shares(*[10] * 10), donated)


def options(tmp: Path) -> InstallOptions:
    return InstallOptions(prefix=tmp, percent=10, host="127.0.0.1", python="/usr/bin/python3")


def cron(tmp: Path) -> BootEntry:
    return BootEntry(kind="cron", script=tmp / "start.sh")


def test_fresh_install_plan(tmp_path: Path) -> None:
    plan = plan_install(BUNDLE, MACHINE, options(tmp_path), Current(), cron(tmp_path))
    kinds = [type(step) for step in plan.steps]
    assert kinds == [WriteFile, WriteFile, InitNode, WriteFile, AddBootEntry, StartNode]
    script = plan.steps[1]
    assert isinstance(script, WriteFile) and script.mode == 0o755
    assert b"--bootstrap 127.0.0.1:9" in script.data and b"--listen 127.0.0.1:0" in script.data
    assert [v["percent"] for v in plan.record["vessels"]] == [30, 50, 20]
    text = plan.render()
    assert "donating 10 %" in text and "(reserved)" in text


def test_second_install_is_a_no_op(tmp_path: Path) -> None:
    first = plan_install(BUNDLE, MACHINE, options(tmp_path), Current(), cron(tmp_path))
    done = Current(record=first.record, state_ready=True, running_pid=123, boot_entry=True)
    other_machine = MachineProfile(cores=8, memory=1, disk_free=1, fd_limit=1)  # not re-measured
    plan = plan_install(BUNDLE, other_machine, options(tmp_path), done, cron(tmp_path))
    assert plan.steps == ()
    assert "nothing to do" in plan.render()


def test_partial_install_resumes(tmp_path: Path) -> None:
    first = plan_install(BUNDLE, MACHINE, options(tmp_path), Current(), cron(tmp_path))
    crashed = Current(record=first.record, state_ready=True, running_pid=None, boot_entry=False)
    plan = plan_install(BUNDLE, MACHINE, options(tmp_path), crashed, cron(tmp_path))
    assert [type(s) for s in plan.steps] == [AddBootEntry, StartNode]


def test_other_bundle_refused(tmp_path: Path) -> None:
    first = plan_install(BUNDLE, MACHINE, options(tmp_path), Current(), cron(tmp_path))
    other = open_bundle(make_bundle(PLANNER, OWNER, percents=(100,)))
    with pytest.raises(AlreadyInstalled, match="different bundle"):
        plan_install(other, MACHINE, options(tmp_path), Current(record=first.record), cron(tmp_path))


def test_uninstall_plans(tmp_path: Path) -> None:
    record = plan_install(BUNDLE, MACHINE, options(tmp_path), Current(), cron(tmp_path)).record
    running = Current(record=record, state_ready=True, running_pid=42, boot_entry=True)
    plan = plan_uninstall(tmp_path, running, cron(tmp_path), purge=True)
    assert [type(s) for s in plan.steps] == [StopNode, RemoveBootEntry, RemoveTree]
    keep = plan_uninstall(tmp_path, running, cron(tmp_path), purge=False)
    assert [type(s) for s in keep.steps] == [StopNode, RemoveBootEntry, WriteFile]
    stopped = Current(record={**record, "active": False}, state_ready=True)
    assert plan_uninstall(tmp_path, stopped, cron(tmp_path), purge=False).steps == ()
    with pytest.raises(NotInstalled):
        plan_uninstall(tmp_path, Current(), cron(tmp_path), purge=True)


def test_reinstall_after_uninstall_reactivates(tmp_path: Path) -> None:
    record = plan_install(BUNDLE, MACHINE, options(tmp_path), Current(), cron(tmp_path)).record
    stopped = Current(record={**record, "active": False}, state_ready=True)
    plan = plan_install(BUNDLE, MACHINE, options(tmp_path), stopped, cron(tmp_path))
    assert [type(s) for s in plan.steps] == [WriteFile, AddBootEntry, StartNode]
    assert plan.record["active"] is True
