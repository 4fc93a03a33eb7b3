"""Errors of the sandbox package (host side).

    SandboxError
    ├── ResourceParseError   a resource file is malformed (line number in the message)
    ├── ResourceMathError    split/join would make a resource negative or ports are not a subset
    ├── VesselBusyError      start on a running vessel
    ├── VesselNotRunning     stop on a vessel that is not running
    ├── ProgramStartError    the program did not get to run (unreadable, runner failed)
    │   └── ProgramCompileError  the program does not compile under the policy (errors kept)
    └── UidExhausted         every vessel uid of the host is leased

Errors raised *inside* a vessel program are Repy's exception names (see ``sandbox.repy``);
they never cross into the host as exceptions, only as log text and exit reasons.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class of every host-side sandbox error."""


class ResourceParseError(SandboxError):
    """Raised when a resource file does not follow Seattle's format."""


class ResourceMathError(SandboxError):
    """Raised when splitting or joining resource tables is impossible."""


class VesselBusyError(SandboxError):
    """Raised when a program is started in a vessel that is already running one."""


class VesselNotRunning(SandboxError):
    """Raised when stopping a vessel that runs nothing."""


class ProgramStartError(SandboxError):
    """Raised by ``Supervisor.start`` when the program ended before it ran."""


class ProgramCompileError(ProgramStartError):
    """Raised by ``Supervisor.start`` when the program does not compile; ``errors`` has each."""

    def __init__(self, errors: tuple[str, ...]) -> None:
        super().__init__("; ".join(errors) or "compile error")
        self.errors = errors


class UidExhausted(SandboxError):
    """Raised when no vessel uid is free on this host (all leases held)."""
