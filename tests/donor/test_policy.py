"""The donor policy's pure core: schedule windows, busy hysteresis, battery, manual pause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nodemanager.donor.policy import (
    DonorPolicy,
    PolicyError,
    PolicyState,
    Readings,
    decide,
    parse_window,
    policy_from_json,
)

MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday


def test_schedule_windows_parse_cover_and_wrap_past_midnight() -> None:
    work = parse_window("Mon-Fri 09:00-18:00 off")
    assert work.covers(MONDAY_10)
    assert not work.covers(MONDAY_10.replace(hour=18))
    assert not work.covers(MONDAY_10 + timedelta(days=5))  # Saturday
    night = parse_window("fri 22:00-06:00")
    saturday_3 = datetime(2026, 12, 12, 3, 0)
    assert night.covers(saturday_3) and night.covers(datetime(2026, 12, 11, 23, 0))
    assert not night.covers(datetime(2026, 12, 11, 21, 0))
    assert not night.covers(datetime(2026, 12, 13, 3, 0))  # Sunday 03:00: Saturday had none
    weekend = parse_window("Sat-Sun 00:00-24:00 off")
    assert weekend.days == (5, 6) and weekend.covers(datetime(2026, 12, 13, 23, 59))
    assert parse_window(work.text()) == work
    assert parse_window("Sun-Tue 08:00-09:00").days == (6, 0, 1)


@pytest.mark.parametrize("bad", ["", "Mon 9-17", "Mon-Fry 09:00-18:00", "Mon 25:00-26:00",
                                 "Mon 09:00-09:00", "Mon 09:60-10:00", "Mon 09:00-24:30",
                                 "Mon 09:00-18:00 on", "Mon 09:00-18:00; rm -rf /"])
def test_bad_schedule_lines_are_refused_with_the_line(bad: str) -> None:
    with pytest.raises(PolicyError, match="schedule line"):
        parse_window(bad)


def test_policy_json_round_trips_and_refuses_bad_values() -> None:
    policy = DonorPolicy(busy_above=60, resume_after=5, schedule=(parse_window("Sat 10:00-12:00"),),
                         net_send=1e6, paused=True, paused_until=1.5e9)
    assert policy_from_json(policy.to_json()) == policy
    for bad in ({"busy_above": 150}, {"in_use_share": -0.1}, {"busy_above": "lots"},
                {"on_battery": 1}, {"paused": "yes"}, {"surprise": 1}, {"schedule": "Mon"},
                {"net_send": 0}, {"resume_after": 1e9}, {"busy_for": None}):
        with pytest.raises(PolicyError):
            policy_from_json(bad)
    with pytest.raises(PolicyError):
        policy_from_json([])  # type: ignore[arg-type]


def _run(policy: DonorPolicy, points: list[tuple[float, float]]) -> list[str | None]:
    """Feed (seconds after MONDAY_10, other CPU %) readings; the pause reason after each."""
    state = PolicyState()
    out = []
    for seconds, cpu in points:
        decision, state = decide(policy, state, MONDAY_10 + timedelta(seconds=seconds),
                                 Readings(other_cpu=cpu))
        out.append(decision.paused)
    return out


def test_busy_threshold_has_hysteresis() -> None:
    policy = DonorPolicy(busy_above=50, busy_below=20, busy_for=1.0, resume_after=3.0)
    seen = _run(policy, [(0, 80), (0.5, 80), (1.0, 80), (1.5, 40), (2.0, 30), (3.0, 10),
                         (4.0, 30), (5.0, 10), (7.0, 10), (8.0, 10), (8.5, 90)])
    assert seen == [None, None, "busy", "busy", "busy", "busy",
                    "busy", "busy", "busy", None, None]
    # a short burst does not pause: above for less than busy_for
    assert _run(policy, [(0, 90), (0.5, 90), (0.9, 10), (1.2, 90)]) == [None] * 4


def test_no_busy_threshold_never_pauses_for_load() -> None:
    assert _run(DonorPolicy(), [(0, 100), (5, 100), (60, 100)]) == [None] * 3


def test_reasons_in_order_manual_battery_schedule_busy() -> None:
    base = DonorPolicy(busy_above=10, busy_for=0, schedule=(parse_window("Mon 09:00-11:00"),))
    busy_on_battery = Readings(other_cpu=90, on_battery=True)
    cases = [
        (base, MONDAY_10, busy_on_battery, "battery"),
        (DonorPolicy(busy_above=10, busy_for=0, on_battery=True,
                     schedule=base.schedule), MONDAY_10, busy_on_battery, "schedule"),
        (base, MONDAY_10.replace(hour=12), Readings(other_cpu=90, on_battery=False), "busy"),
        (DonorPolicy(paused=True), MONDAY_10, busy_on_battery, "manual"),
        (DonorPolicy(), MONDAY_10, Readings(on_battery=None), None),
    ]
    for policy, when, readings, reason in cases:
        assert decide(policy, PolicyState(), when, readings)[0].paused == reason


def test_timed_manual_pause_ends_by_itself() -> None:
    until = (MONDAY_10 + timedelta(hours=2)).timestamp()
    policy = DonorPolicy(paused=True, paused_until=until)
    assert decide(policy, PolicyState(), MONDAY_10, Readings())[0].paused == "manual"
    later = MONDAY_10 + timedelta(hours=2, seconds=1)
    assert decide(policy, PolicyState(), later, Readings())[0].paused is None


def test_idle_and_in_use_shares() -> None:
    policy = DonorPolicy(in_use_share=0.25, idle_share=1.0, idle_after=300, idle_cpu=10)
    in_use = decide(policy, PolicyState(), MONDAY_10, Readings(other_cpu=5, input_idle=20))[0]
    assert (in_use.idle, in_use.cpu_factor) == (False, 0.25)
    idle = decide(policy, PolicyState(), MONDAY_10, Readings(other_cpu=5, input_idle=400))[0]
    assert (idle.idle, idle.cpu_factor) == (True, 1.0)
    loaded = decide(policy, PolicyState(), MONDAY_10, Readings(other_cpu=50, input_idle=None))[0]
    assert loaded.cpu_factor == 0.25
