"""An in-memory ProgramRunner with the shape of sandbox.Supervisor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import trio

from sandbox import LogSlice, ResourceTable, VesselBusyError, VesselNotRunning


@dataclass(frozen=True)
class FakeUsage:
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeReport:
    status: str = "Fresh"
    exit_reason: str | None = None
    exit_code: int | None = None
    usage: FakeUsage = field(default_factory=FakeUsage)
    started_at: float | None = None
    ended_at: float | None = None


class FakeRunner:
    """Programs 'run' until stopped or finished by the test."""

    def __init__(self) -> None:
        self.reports: dict[str, FakeReport] = {}
        self.logs: dict[str, bytes] = {}
        self.ended: dict[str, trio.Event] = {}
        self.started: list[tuple[str, str, list[str], ResourceTable]] = []
        self.gates: dict[str, trio.Event] = {}
        """A start in a vessel listed here waits for its event (a slow program start)."""
        self.waiting: set[str] = set()

    async def start(self, *, vessel: str, directory: Path, resources: ResourceTable,
                    program: str, args: list[str], log_path: Path) -> None:
        if self.report(vessel).status == "Started":
            raise VesselBusyError(f"{vessel} is running")
        assert (directory / program).is_file()
        if vessel in self.gates:
            self.waiting.add(vessel)
            await self.gates[vessel].wait()
            self.waiting.discard(vessel)
        self.started.append((vessel, program, args, resources))
        self.reports[vessel] = FakeReport(status="Started", usage=FakeUsage({"cpu": 0.0}))
        self.logs[vessel] = f"running {program} {' '.join(args)}\n".encode()
        self.ended[vessel] = trio.Event()

    def finish(self, vessel: str, code: int = 0, reason: str = "exited") -> None:
        self.reports[vessel] = FakeReport(status="Terminated", exit_reason=reason, exit_code=code)
        self.ended[vessel].set()

    async def stop(self, vessel: str) -> None:
        if self.report(vessel).status != "Started":
            raise VesselNotRunning(vessel)
        self.reports[vessel] = FakeReport(status="Stopped", exit_reason="stopped", exit_code=-9)
        self.ended[vessel].set()

    def report(self, vessel: str) -> FakeReport:
        return self.reports.get(vessel, FakeReport())

    def log_since(self, vessel: str, since: int | None, log_path: Path | None = None) -> LogSlice:
        data = self.logs.get(vessel, b"")
        start = min(since or 0, len(data))
        return LogSlice(data[start:], start, len(data))

    async def wait(self, vessel: str) -> FakeReport:
        if vessel in self.ended:
            await self.ended[vessel].wait()
        return self.report(vessel)

    def forget(self, vessel: str) -> None:
        self.reports.pop(vessel, None)
        self.logs.pop(vessel, None)
