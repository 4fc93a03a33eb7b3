"""Errors of the sandbox package (host side).

    SandboxError
    ├── ResourceParseError   a resource file is malformed (line number in the message)
    ├── ResourceMathError    split/join would make a resource negative or ports are not a subset
    ├── VesselBusyError      start on a running vessel
    └── VesselNotRunning     stop on a vessel that is not running

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
