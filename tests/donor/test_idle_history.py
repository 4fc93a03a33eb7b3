"""The donor's idle time from logind (with terminals as the fallback), and the page's chart
history kept across restarts of the node manager."""

from __future__ import annotations

import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nodemanager.donor.control import DonorControl
from nodemanager.donor.history import (
    HISTORY,
    HISTORY_FILE,
    SAMPLE_EVERY,
    HistoryFile,
    Sample,
    decode_sample,
    encode_sample,
    recent,
)
from nodemanager.donor.idle import LogindIdle, combine, logind_idle, parse_sessions
from nodemanager.donor.policy import Readings
from sandbox import Supervisor

NOW = 1_796_000_000.0
SESSIONS = """\
Id=2
Class=user
IdleHint=yes
IdleSinceHint={since_2}

Id=c1
Class=greeter
IdleHint=no
IdleSinceHint=0

Id=5
Class=user
IdleHint=yes
IdleSinceHint={since_5}
"""


def test_logind_idle_is_the_least_idle_user_session() -> None:
    text = SESSIONS.format(since_2=int((NOW - 600) * 1e6), since_5=int((NOW - 90) * 1e6))
    assert logind_idle(text, NOW) == pytest.approx(90)  # the greeter does not count
    busy = text.replace("Id=5\nClass=user\nIdleHint=yes", "Id=5\nClass=user\nIdleHint=no")
    assert logind_idle(busy, NOW) == 0.0
    assert logind_idle("Id=c1\nClass=greeter\nIdleHint=yes\nIdleSinceHint=1\n", NOW) is None
    assert logind_idle("garbage\n\nClass=user\nIdleHint=yes\nIdleSinceHint=x\n", NOW) is None
    assert parse_sessions("     2   1000 donor seat0 tty2\n c1 120 gdm seat0 tty1\n\n") == ["2", "c1"]
    assert parse_sessions("$(rm -rf /) 1 x\n") == []
    assert combine(None, 30.0, 5.0) == 5.0 and combine(None, None) is None


def test_without_logind_the_real_loginctl_fails_and_terminals_decide() -> None:
    """This host runs no systemd: the real ``loginctl`` cannot answer (a host without the
    binary is the same case); a host where logind runs gets an answer instead."""
    if Path("/run/systemd/system").exists():
        pytest.skip("logind runs here: the fallback cannot be seen")
    probe = LogindIdle()
    probe.refresh()
    assert not probe.available and probe.idle(time.time()) is None


def test_a_logind_answer_is_used_and_ages(tmp_path: Path) -> None:
    """A stand-in ``loginctl`` (the real one needs a running logind) printing what logind's
    would: two user sessions, the less idle one 30 s idle."""
    since = int((time.time() - 30) * 1e6)
    script = tmp_path / "loginctl"
    script.write_text("#!/bin/sh\nif [ \"$1\" = list-sessions ]; then\n"
                      "  printf '  2 1000 donor seat0 tty2\\n  5 1000 donor - pts/1\\n'\n"
                      "else\n  cat <<'EOF'\n"
                      + SESSIONS.format(since_2=since - 600_000_000, since_5=since) + "EOF\nfi\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    probe = LogindIdle((str(script),))
    probe.refresh()
    assert probe.available
    now = time.time()
    assert probe.idle(now) == pytest.approx(30, abs=3)
    assert probe.idle(now + 60) == pytest.approx(90, abs=3)  # aged until the next answer


def _sample(at: float, cpu: float = 1.0) -> Sample:
    return Sample(at, 12.5, cpu, None, memory=1e6, disk=2e6, net_rate=3.0)


def test_history_lines_round_trip_and_bad_ones_are_skipped(tmp_path: Path) -> None:
    sample = Sample(NOW, None, 3.0, "busy", memory=5.0, disk=6.0, net_rate=0.5)
    assert decode_sample(encode_sample(sample)) == sample
    for bad in (b"", b"{", b"[]", b'{"at": 1}', encode_sample(sample).replace(b"3.0", b"NaN"),
                encode_sample(sample).replace(b'"busy"', b"7"), b"x" * 2000,
                encode_sample(sample).replace(b"3.0", b"true")):
        assert decode_sample(bad) is None, bad
    samples = [_sample(NOW - 4000), _sample(NOW - 100), _sample(NOW + 500), _sample(NOW - 50)]
    assert [s.at for s in recent(samples, NOW)] == [NOW - 100, NOW - 50]

    path = tmp_path / HISTORY_FILE
    path.write_bytes(encode_sample(_sample(NOW - 20)) + b"not json\n" + encode_sample(_sample(NOW - 10))
                     + encode_sample(_sample(NOW - 5))[:30])  # a torn last line
    assert [s.at for s in HistoryFile(tmp_path).load(NOW)] == [NOW - 20, NOW - 10]

    with path.open("wb") as handle:  # a file grown huge (a bug, a hand edit): only its end is read
        handle.write(b"x" * (3 * 2 * HISTORY * 1024) + b"\n")
        handle.write(encode_sample(_sample(NOW - 1)))
    assert [s.at for s in HistoryFile(tmp_path).load(NOW)] == [NOW - 1]


def test_the_history_file_stays_bounded(tmp_path: Path) -> None:
    history = HistoryFile(tmp_path)
    kept: list[Sample] = []
    for i in range(2 * HISTORY + 5):
        kept = [*kept, _sample(NOW + i * SAMPLE_EVERY)][-HISTORY:]
        history.append(kept[-1], kept)
    lines = (tmp_path / HISTORY_FILE).read_bytes().splitlines()
    assert HISTORY <= len(lines) < 2 * HISTORY
    assert decode_sample(lines[-1]) == kept[-1]
    assert stat.S_IMODE((tmp_path / HISTORY_FILE).stat().st_mode) == 0o600


async def test_charts_survive_a_restart(tmp_path: Path) -> None:
    start = time.time() - 100

    class Clock:
        at = start

        def __call__(self) -> datetime:
            return datetime.fromtimestamp(self.at, UTC)

    clock = Clock()
    async with Supervisor.open() as sup:
        first = DonorControl(tmp_path, sup, readings=lambda: Readings(other_cpu=7.0), clock=clock)
        for _ in range(3):
            first.step()
            clock.at += SAMPLE_EVERY
        assert len(first.history) == 3
        again = DonorControl(tmp_path, sup, readings=lambda: Readings(other_cpu=7.0), clock=clock)
        assert list(again.history) == list(first.history)
        assert [s.other_cpu for s in again.history] == [7.0] * 3
