"""The seam to the sandbox: what the node manager needs from a program supervisor.

``sandbox.Supervisor`` satisfies ``ProgramRunner``; tests use an in-memory fake. Sandbox
exceptions are translated into wire errors once, here (``map_runner_errors``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from nodemanager import errors
from nodemanager.node.model import STATUSES, Live
from sandbox import LogSlice, ProgramCompileError, ResourceTable, SandboxError, VesselBusyError
from sandbox import VesselNotRunning as SandboxNotRunning


class UsageLike(Protocol):
    """``sandbox.Usage``: resource usage figures by kind."""

    @property
    def values(self) -> Mapping[str, float]: ...


class ReportLike(Protocol):
    """``sandbox.VesselReport``."""

    @property
    def status(self) -> str: ...
    @property
    def exit_reason(self) -> str | None: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def usage(self) -> UsageLike: ...


class ProgramRunner(Protocol):
    """Runs at most one program per vessel (``sandbox.Supervisor``)."""

    async def start(
        self, *, vessel: str, directory: Path, resources: ResourceTable, program: str,
        args: list[str], log_path: Path,
    ) -> object: ...

    async def stop(self, vessel: str) -> object: ...

    def report(self, vessel: str) -> ReportLike: ...

    def log_since(self, vessel: str, since: int | None, log_path: Path | None = None) -> LogSlice:
        ...

    async def wait(self, vessel: str) -> ReportLike: ...

    def forget(self, vessel: str) -> None: ...


def live_of(report: ReportLike) -> Live:
    """Our view of a supervisor report (unknown statuses read as Terminated)."""
    status = report.status if report.status in STATUSES else "Terminated"
    paused = getattr(report, "paused", None)  # sandbox reports say; other runners do not
    return Live(status=status, exit_reason=report.exit_reason, exit_code=report.exit_code,
                usage=dict(report.usage.values),
                paused=paused if isinstance(paused, str) and status == "Started" else None)


@contextmanager
def map_runner_errors(what: str) -> Iterator[None]:
    """Translate sandbox and OS errors raised by a runner into wire errors."""
    try:
        yield
    except VesselBusyError as exc:
        raise errors.VesselBusy(f"{what}: {exc}") from exc
    except SandboxNotRunning as exc:
        raise errors.VesselNotRunning(f"{what}: {exc}") from exc
    except ProgramCompileError as exc:
        raise errors.CompileFailed(f"{what}: compile error: {exc}") from exc
    except (SandboxError, OSError) as exc:
        raise errors.StartFailed(f"{what}: {exc}") from exc


class UnavailableRunner:
    """A runner for nodes without a sandbox: every start fails, nothing ever runs."""

    class _Usage:
        values: Mapping[str, float] = {}

    class _Report:
        status = "Fresh"
        exit_reason: str | None = None
        exit_code: int | None = None

        def __init__(self) -> None:
            self.usage = UnavailableRunner._Usage()

    async def start(
        self, *, vessel: str, directory: Path, resources: ResourceTable, program: str,
        args: Sequence[str], log_path: Path,
    ) -> object:
        raise errors.StartFailed("this node manager runs without a sandbox")

    async def stop(self, vessel: str) -> object:
        raise SandboxNotRunning(vessel)

    def report(self, vessel: str) -> ReportLike:
        return self._Report()

    def log_since(self, vessel: str, since: int | None, log_path: Path | None = None) -> LogSlice:
        return LogSlice(b"", 0, 0)

    async def wait(self, vessel: str) -> ReportLike:
        return self._Report()

    def forget(self, vessel: str) -> None:
        return None
