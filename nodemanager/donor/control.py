"""The donor's controls at run time (I/O shell around ``policy``).

The policy lives in ``STATE/donor.json`` (``PolicyFile``): ``seattle-installer pause``,
``resume`` and ``policy`` and the local page write it atomically, and ``DonorControl``
(a task in the daemon's nursery) reads it when it changes. Every ``TICK`` seconds the
control measures (``HostReadings``: other programs' CPU from ``/proc/stat`` minus the
vessels' own, the battery through psutil, the donor's idle time from logind's hints and
login terminals: ``idle.py``), asks
``decide`` and applies the answer to the supervisor: pause every program (frozen, not
killed) with a reason, resume, or scale the CPU shares. It also keeps the last hour of
samples (every ``SAMPLE_EVERY`` s) for the page's charts, kept across restarts
(``history.py``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import psutil
import trio

from nodemanager.donor.history import HISTORY, SAMPLE_EVERY, HistoryFile, Sample
from nodemanager.donor.idle import LOGIND_EVERY, LOGIND_RETRY, LogindIdle, combine, terminal_idle
from nodemanager.donor.policy import (
    Decision,
    DonorPolicy,
    PolicyError,
    PolicyState,
    Readings,
    decide,
    policy_from_json,
)
from nodemanager.donor.reshare import ReshareRequest, read_request, write_result
from nodemanager.errors import NodeManagerError
from seattlecore.keys import write_atomic

log = logging.getLogger(__name__)

POLICY_FILE = "donor.json"
DONOR = "donor"
"""The GetNodeStatus entry of the donor control."""
TICK = 0.25


class PolicyFile:
    """``STATE/donor.json``: the donor policy, read when it changed, written atomically."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / POLICY_FILE
        self._seen: tuple[int, int] | None = None
        self._policy = DonorPolicy()

    def read(self) -> DonorPolicy:
        """The policy now (the last good one if the file turned bad; defaults if absent)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen, self._policy = None, DonorPolicy()
            return self._policy
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._seen:
            self._seen = stamp
            try:
                self._policy = load_policy(self.path)
            except PolicyError as exc:
                log.error("%s: %s (keeping the previous policy)", self.path, exc)
        return self._policy

    def write(self, policy: DonorPolicy) -> None:
        save_policy(self.path, policy)


def load_policy(path: Path) -> DonorPolicy:
    """The policy in ``path`` (defaults if it does not exist); PolicyError if it is bad."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return DonorPolicy()
    except OSError as exc:
        raise PolicyError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path} is not JSON: {exc}") from exc
    return policy_from_json(data)


def save_policy(path: Path, policy: DonorPolicy) -> None:
    write_atomic(path, json.dumps(policy.to_json(), indent=1).encode() + b"\n", mode=0o600)


def update_policy(state_dir: Path, **changes: Any) -> DonorPolicy:
    """Read, change and write the policy (the CLI and the page use this)."""
    path = state_dir / POLICY_FILE
    data = load_policy(path).to_json()
    data.update(changes)
    policy = policy_from_json(data)
    save_policy(path, policy)
    return policy


class Pausable(Protocol):
    """What the control drives: ``sandbox.Supervisor``."""

    @property
    def mechanism(self) -> str: ...
    def pause_all(self, reason: str) -> None: ...
    def resume_all(self) -> None: ...
    def set_cpu_factor(self, factor: float) -> None: ...
    def set_rate_caps(self, caps: Mapping[str, float]) -> None: ...
    def running(self) -> list[str]: ...
    def pid_of(self, vessel: str) -> int | None: ...


def _cpu_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _busy_jiffies() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat", "rb") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    total = sum(fields[:8])
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    ticks = os.sysconf("SC_CLK_TCK")
    return (total - idle) / ticks, total / ticks


class HostReadings:
    """Measures this host for ``decide``: call ``sample()`` once per tick."""

    def __init__(self, vessel_pids: Callable[[], Iterable[int]],
                 logind: LogindIdle | None = None) -> None:
        self._pids = vessel_pids
        self._last: tuple[float, float, float] | None = None
        self.logind = logind or LogindIdle()

    def vessel_cpu(self) -> float:
        return sum(_cpu_of(pid) for pid in self._pids())

    def sample(self) -> Readings:
        busy, total = _busy_jiffies()
        vessels = self.vessel_cpu()
        other = None
        if self._last is not None:
            d_total = total - self._last[1]
            if d_total > 0:
                d_other = (busy - self._last[0]) - max(0.0, vessels - self._last[2])
                other = min(100.0, max(0.0, 100.0 * d_other / d_total))
        self._last = (busy, total, vessels)
        now = time.time()
        idle = combine(self.logind.idle(now), terminal_idle(now))
        return Readings(other_cpu=other, on_battery=_on_battery(), input_idle=idle)

    async def watch_logind(self) -> None:
        """Ask logind for its idle hints every few seconds (in a worker thread)."""
        while True:
            await trio.to_thread.run_sync(self.logind.refresh)
            await trio.sleep(LOGIND_EVERY if self.logind.available else LOGIND_RETRY)


def _on_battery() -> bool | None:
    try:
        battery = psutil.sensors_battery()
    except (OSError, AttributeError, NotImplementedError):
        return None
    return None if battery is None or battery.power_plugged is None else not battery.power_plugged


def rate_caps(policy: DonorPolicy, vessels: int) -> dict[str, float]:
    """Each program's share of the machine-wide network caps: at most ``cap / vessels`` (pure),
    so all vessels together never exceed the cap. Applies to programs started afterwards."""
    caps = {"netsend": policy.net_send, "netrecv": policy.net_recv}
    return {kind: cap / max(1, vessels) for kind, cap in caps.items() if cap is not None}


def local_now() -> datetime:
    return datetime.now().astimezone()


class DonorControl:
    """Applies the donor policy to the supervisor; ``status()`` for GetNodeStatus and the page."""

    def __init__(self, state_dir: Path, runner: Pausable, *,
                 readings: Callable[[], Readings] | None = None,
                 clock: Callable[[], datetime] = local_now, tick: float = TICK,
                 reshare: Callable[[ReshareRequest], None] | None = None,
                 percent: Callable[[], float | None] | None = None,
                 usage: Callable[[], Mapping[str, Mapping[str, float]]] | None = None,
                 vessel_count: Callable[[], int] = lambda: 1,
                 on_paused: Callable[[str | None], None] | None = None) -> None:
        self.state_dir = state_dir
        self._on_paused = on_paused
        self._told: str | None = None
        self._reshare = reshare
        self._percent = percent
        self._usage = usage
        self._vessel_count = vessel_count
        self.file = PolicyFile(state_dir)
        self.runner = runner
        self._host = HostReadings(self._vessel_pids)
        self._readings = readings or self._host.sample
        self._clock = clock
        self._tick = tick
        self._state = PolicyState()
        self.decision = Decision(None, 1.0, False)
        self.readings = Readings()
        self._history_file = HistoryFile(state_dir)
        self.history: deque[Sample] = deque(self._history_file.load(time.time()), maxlen=HISTORY)
        self._last_sample: tuple[float, float, float] | None = None
        self.changed_at = time.time()

    def _vessel_pids(self) -> list[int]:
        return [pid for name in self.runner.running()
                if (pid := self.runner.pid_of(name)) is not None]

    def step(self) -> Decision:
        """One tick: read the policy and the host, decide, apply. Returns the decision."""
        self._serve_reshare()
        policy = self.file.read()
        now = self._clock()
        self.readings = self._readings()
        decision, self._state = decide(policy, self._state, now, self.readings)
        if decision.paused != self.decision.paused:
            if decision.paused is None:
                self.runner.resume_all()
                log.info("vessels resumed")
            else:
                self.runner.pause_all(decision.paused)
                log.info("vessels paused: %s (%s)", decision.paused, decision.detail)
            self.changed_at = time.time()
        self.runner.set_cpu_factor(decision.cpu_factor)
        self.runner.set_rate_caps(rate_caps(policy, self._vessel_count()))
        self.decision = decision
        self._record(now.timestamp())
        return decision

    def _serve_reshare(self) -> None:
        request = read_request(self.state_dir)
        if request is not None:
            write_result(self.state_dir, request, self.reshare_now(request))

    def reshare_now(self, request: ReshareRequest) -> str | None:
        """Carry out a reshare; None when done, else why it was refused."""
        if self._reshare is None:
            return "this node manager cannot reshare"
        try:
            self._reshare(request)
        except (NodeManagerError, OSError) as exc:
            log.warning("reshare to %g %% refused: %s", request.percent, exc)
            return str(exc)
        return None

    def percent(self) -> float | None:
        """The share of the machine the vessels hold, if known."""
        return None if self._percent is None else self._percent()

    def change_policy(self, **changes: Any) -> DonorPolicy:
        """Change policy settings (PolicyError if a value is bad); applied at once."""
        policy = update_policy(self.state_dir, **changes)
        self.step()
        return policy

    def _record(self, at: float) -> None:
        if self._last_sample is not None and 0 <= at - self._last_sample[0] < SAMPLE_EVERY:
            return
        vessels = self._host.vessel_cpu()
        usage = self._usage() if self._usage is not None else {}
        memory = sum(u.get("memory", 0.0) for u in usage.values())
        disk = sum(u.get("diskused", 0.0) for u in usage.values())
        net = sum(u.get(k, 0.0) for u in usage.values() for k in ("netsend_total", "netrecv_total"))
        cpu_rate = net_rate = 0.0
        if self._last_sample is not None:
            elapsed = max(1e-9, at - self._last_sample[0])
            cpu_rate = 100.0 * max(0.0, vessels - self._last_sample[1]) / elapsed
            net_rate = max(0.0, net - self._last_sample[2]) / elapsed
        self._last_sample = (at, vessels, net)
        sample = Sample(at, self.readings.other_cpu, cpu_rate, self.decision.paused,
                        memory=memory, disk=disk, net_rate=net_rate)
        self.history.append(sample)
        self._history_file.append(sample, self.history)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick until cancelled; the first decision is applied before ``started``."""
        async with trio.open_nursery() as nursery:
            if self._readings == self._host.sample:  # not injected readings (tests)
                nursery.start_soon(self._host.watch_logind)
            await trio.to_thread.run_sync(self.step)
            self._tell()
            task_status.started()
            while True:
                await trio.sleep(self._tick)
                try:
                    self.step()
                except OSError as exc:  # a reading failed: keep the last decision
                    log.warning("donor control: %s", exc)
                self._tell()

    def _tell(self) -> None:
        """Pass a changed pause reason to ``on_paused`` (the node's adverts), on the trio
        thread: a pause made by the page or a tick reaches the DHT within one tick."""
        if self._on_paused is not None and self.decision.paused != self._told:
            self._told = self.decision.paused
            self._on_paused(self._told)

    def status(self) -> dict[str, object]:
        """The ``donor`` entry of GetNodeStatus (docs/protocol.md, revision 9)."""
        d, r = self.decision, self.readings
        return {
            "paused": d.paused, "detail": d.detail, "until": d.until, "idle": d.idle,
            "cpu_factor": d.cpu_factor, "mechanism": self.runner.mechanism,
            "other_cpu": r.other_cpu, "on_battery": r.on_battery, "since": self.changed_at,
            "policy": self.file.read().to_json(),
        }

    def pause(self, until: float | None = None) -> DonorPolicy:
        """The donor's own pause (``until``: epoch seconds, None: until resume); applied now."""
        policy = replace(self.file.read(), paused=True, paused_until=until)
        self.file.write(policy)
        self.step()
        return policy

    def resume(self) -> DonorPolicy:
        policy = replace(self.file.read(), paused=False, paused_until=None)
        self.file.write(policy)
        self.step()
        return policy
