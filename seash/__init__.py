"""seash: the researchers' shell. Finds vessels over the DHT and commands them concurrently.

Pure parts: ``parse`` (lines -> words), ``commands`` (the tree driving dispatch, help and
completion), ``session`` (identities, targets, groups), ``statefile`` (encrypted state).
I/O: ``client`` (fan-out over node managers), ``executor`` (running commands),
``experiment`` (the Python API for scripted experiments, on the same fan-out),
the command modules (``discovery``, ``programs``, ``files``, ``logs``, ...), ``shell``
(terminal, scripts, ``--json``).
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from seattlecore.lazy import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from seash.client import NodePool, NodeResult, describe_error, fan_out
    from seash.commands import Arg, Args, Command, Option, complete, help_text, resolve
    from seash.errors import (
        DiscoveryError,
        IdentityError,
        KeyFileError,
        NoVesselsFound,
        SeashError,
        StateFileError,
        UnknownTarget,
        UsageError,
    )
    from seash.session import Identity, Session, Settings, VesselRef

__getattr__ = _lazy_exports(__name__, {
    "seash.client": (
        "NodePool", "NodeResult", "describe_error", "fan_out",
    ),
    "seash.commands": (
        "Arg", "Args", "Command", "Option", "complete", "help_text", "resolve",
    ),
    "seash.errors": (
        "DiscoveryError", "IdentityError", "KeyFileError", "NoVesselsFound", "SeashError",
        "StateFileError", "UnknownTarget", "UsageError",
    ),
    "seash.session": (
        "Identity", "Session", "Settings", "VesselRef",
    ),
})

__all__ = [
    "Arg",
    "Args",
    "Command",
    "DiscoveryError",
    "Identity",
    "IdentityError",
    "KeyFileError",
    "NoVesselsFound",
    "NodePool",
    "NodeResult",
    "Option",
    "SeashError",
    "Session",
    "Settings",
    "StateFileError",
    "UnknownTarget",
    "UsageError",
    "VesselRef",
    "complete",
    "describe_error",
    "fan_out",
    "help_text",
    "resolve",
]
