"""Run untrusted programs in vessels under enforced resource limits.

Host side: ``Supervisor`` (trio) starts one child process per running program and
reports ``VesselReport``s; ``ResourceTable``/``parse_resources`` read Seattle resource
files; ``compile_program`` checks a program against the policy without running it.
"""

from typing import TYPE_CHECKING, Any

from sandbox.compiler import Compiled, CompileFailed, compile_program
from sandbox.errors import (
    ProgramCompileError,
    ProgramStartError,
    ResourceMathError,
    ResourceParseError,
    SandboxError,
    UidExhausted,
    VesselBusyError,
    VesselNotRunning,
)
from sandbox.limits import LogSlice
from sandbox.resources import (
    DEFAULT_OFFCUT,
    KINDS,
    ResourceTable,
    join_resources,
    parse_resources,
    split_resources,
    total,
)

if TYPE_CHECKING:
    from sandbox.supervisor import Supervisor, Usage, VesselReport, VesselStatus

_LAZY = {"Supervisor", "Usage", "VesselReport", "VesselStatus"}


def __getattr__(name: str) -> Any:
    """Load the trio supervisor on first use, so vessel children never import trio."""
    if name in _LAZY:
        from sandbox import supervisor

        return getattr(supervisor, name)
    raise AttributeError(name)


__all__ = [
    "DEFAULT_OFFCUT",
    "KINDS",
    "CompileFailed",
    "Compiled",
    "LogSlice",
    "ProgramCompileError",
    "ProgramStartError",
    "ResourceMathError",
    "ResourceParseError",
    "ResourceTable",
    "SandboxError",
    "Supervisor",
    "UidExhausted",
    "Usage",
    "VesselBusyError",
    "VesselNotRunning",
    "VesselReport",
    "VesselStatus",
    "compile_program",
    "join_resources",
    "parse_resources",
    "split_resources",
    "total",
]
