"""The donor control on a real supervisor: an injected clock and battery pause and resume a
running program, which continues where it was (its counter keeps counting, no restart)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from nodemanager.donor.control import DonorControl, load_policy, update_policy
from nodemanager.donor.policy import PolicyError, Readings
from sandbox import Supervisor
from tests.support.polling import eventually
from tests.support.vessels import table

pytestmark = pytest.mark.slow

COUNTER = "n = 0\nwhile True:\n    log('count', n, '\\n')\n    n = n + 1\n    sleep(0.05)\n"
MONDAY_8 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


class World:
    """An injected clock and host readings."""

    def __init__(self) -> None:
        self.now = MONDAY_8
        self.readings = Readings(other_cpu=5.0, on_battery=False)

    def clock(self) -> datetime:
        return self.now

    def read(self) -> Readings:
        return self.readings


def _counts(sup: Supervisor) -> list[int]:
    return [int(line.split()[1]) for line in sup.read_log("v1").decode().splitlines()
            if line.startswith("count ")]


async def _frozen(sup: Supervisor) -> int:
    """Wait until the counter stops moving; return where it stopped."""
    await trio.sleep(0.3)
    first = _counts(sup)[-1]
    await trio.sleep(0.5)
    assert _counts(sup)[-1] == first, "the program still runs"
    return first


async def _moves_on(sup: Supervisor, frozen_at: int) -> None:
    await eventually(lambda: _counts(sup)[-1] >= frozen_at + 3, timeout=10)
    seen = _counts(sup)
    assert seen == list(range(seen[0], seen[0] + len(seen))), "the program restarted"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir()
    return directory


async def test_schedule_battery_and_busy_pause_and_resume_a_running_program(
    tmp_path: Path, state: Path,
) -> None:
    vessel = tmp_path / "v1"
    vessel.mkdir()
    (vessel / "count.py").write_text(COUNTER)
    world = World()
    update_policy(state, schedule=["Mon-Fri 09:00-18:00 off"], busy_above=50.0, busy_for=0.0,
                  resume_after=0.0)
    async with Supervisor.open() as sup:
        control = DonorControl(state, sup, readings=world.read, clock=world.clock)
        await sup.start("v1", vessel, table(cpu=0.5), "count.py")
        assert control.step().paused is None
        await eventually(lambda: len(_counts(sup)) >= 3)

        for pause, resume in [
            (lambda: setattr(world, "now", MONDAY_8 + timedelta(hours=1.5)),
             lambda: setattr(world, "now", MONDAY_8 + timedelta(hours=11))),
            (lambda: setattr(world, "readings", Readings(other_cpu=5.0, on_battery=True)),
             lambda: setattr(world, "readings", Readings(other_cpu=5.0, on_battery=False))),
            (lambda: setattr(world, "readings", Readings(other_cpu=90.0, on_battery=False)),
             lambda: setattr(world, "readings", Readings(other_cpu=5.0, on_battery=False))),
        ]:
            pause()
            decision = control.step()
            assert decision.paused in ("schedule", "battery", "busy")
            assert sup.report("v1").paused == decision.paused
            assert control.status()["paused"] == decision.paused
            frozen_at = await _frozen(sup)
            resume()
            assert control.step().paused is None
            assert sup.report("v1").paused is None
            await _moves_on(sup, frozen_at)


async def test_manual_pause_with_an_end_and_resume(tmp_path: Path, state: Path) -> None:
    vessel = tmp_path / "v1"
    vessel.mkdir()
    (vessel / "count.py").write_text(COUNTER)
    world = World()
    async with Supervisor.open() as sup:
        control = DonorControl(state, sup, readings=world.read, clock=world.clock)
        await sup.start("v1", vessel, table(cpu=0.5), "count.py")
        await eventually(lambda: len(_counts(sup)) >= 2)
        control.pause(until=(MONDAY_8 + timedelta(hours=2)).timestamp())
        assert sup.report("v1").paused == "manual"
        frozen_at = await _frozen(sup)
        world.now = MONDAY_8 + timedelta(hours=1)
        assert control.step().paused == "manual"
        world.now = MONDAY_8 + timedelta(hours=2, minutes=1)
        assert control.step().paused is None  # the pause ran out
        await _moves_on(sup, frozen_at)
        control.pause()
        frozen_at = await _frozen(sup)
        control.resume()
        await _moves_on(sup, frozen_at)
        assert load_policy(state / "donor.json").paused is False


async def test_a_bad_policy_file_keeps_the_last_good_policy(state: Path) -> None:
    world = World()
    async with Supervisor.open() as sup:
        control = DonorControl(state, sup, readings=world.read, clock=world.clock)
        update_policy(state, paused=True)
        assert control.step().paused == "manual"
        (state / "donor.json").write_text('{"paused": "maybe", ')
        assert control.step().paused == "manual"
        with pytest.raises(PolicyError):
            update_policy(state, paused=False)  # the CLI says the file is bad
        (state / "donor.json").write_text('{"busy_above": 300}')
        assert control.step().paused == "manual"
        (state / "donor.json").unlink()
        assert control.step().paused is None


async def test_network_caps_split_over_the_vessels(tmp_path: Path, state: Path) -> None:
    """A machine-wide cap of 4000 B/s over 4 vessels: each program starts with at most 1000."""
    vessel = tmp_path / "v1"
    vessel.mkdir()
    (vessel / "limits.py").write_text("limits = getresources()[0]\n"
                                      "log('send', limits['netsend'], 'recv', limits['netrecv'])\n")
    world = World()
    update_policy(state, net_send=4000.0)
    async with Supervisor.open() as sup:
        control = DonorControl(state, sup, readings=world.read, clock=world.clock,
                               vessel_count=lambda: 4)
        control.step()
        await sup.start("v1", vessel, table(netsend=100_000, netrecv=100_000), "limits.py")
        await sup.wait("v1")
        words = sup.read_log("v1").decode().split()
        assert float(words[1]) == 1000.0 and float(words[3]) == 100_000.0  # recv: no cap
