"""Run untrusted programs in vessels under enforced resource limits.

Host side: ``Supervisor`` (trio) starts one child process per running program and
reports ``VesselReport``s; ``ResourceTable``/``parse_resources`` read Seattle resource
files; ``compile_program`` checks a program against the policy without running it.
"""

from sandbox.compiler import Compiled, CompileFailed, compile_program
from sandbox.errors import (
    ResourceMathError,
    ResourceParseError,
    SandboxError,
    VesselBusyError,
    VesselNotRunning,
)
from sandbox.resources import (
    DEFAULT_OFFCUT,
    KINDS,
    ResourceTable,
    join_resources,
    parse_resources,
    split_resources,
    total,
)
from sandbox.supervisor import Supervisor, Usage, VesselReport, VesselStatus

__all__ = [
    "DEFAULT_OFFCUT",
    "KINDS",
    "CompileFailed",
    "Compiled",
    "ResourceMathError",
    "ResourceParseError",
    "ResourceTable",
    "SandboxError",
    "Supervisor",
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
