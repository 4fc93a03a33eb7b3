"""Run untrusted programs in vessels under enforced resource limits.

Host side: ``Supervisor`` (trio) starts one child process per running program and
reports ``VesselReport``s; ``ResourceTable``/``parse_resources`` read Seattle resource
files; ``compile_program`` checks a program against the policy without running it.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from seattlecore.lazy import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
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
    from sandbox.lang.compiler import Compiled, CompileFailed, compile_program
    from sandbox.process.limits import LogSlice
    from sandbox.process.supervisor import Supervisor, Usage, VesselReport, VesselStatus
    from sandbox.resources import (
        DEFAULT_OFFCUT,
        KINDS,
        ResourceTable,
        join_resources,
        parse_resources,
        split_resources,
        total,
    )

__getattr__ = _lazy_exports(__name__, {
    "sandbox.lang.compiler": (
        "Compiled", "CompileFailed", "compile_program",
    ),
    "sandbox.errors": (
        "ProgramCompileError", "ProgramStartError", "ResourceMathError", "ResourceParseError",
        "SandboxError", "UidExhausted", "VesselBusyError", "VesselNotRunning",
    ),
    "sandbox.process.limits": (
        "LogSlice",
    ),
    "sandbox.resources": (
        "DEFAULT_OFFCUT", "KINDS", "ResourceTable", "join_resources", "parse_resources",
        "split_resources", "total",
    ),
    "sandbox.process.supervisor": (
        "Supervisor", "Usage", "VesselReport", "VesselStatus",
    ),
})

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
