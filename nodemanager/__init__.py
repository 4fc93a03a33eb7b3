"""The donor-side node manager: owns vessels and answers signed requests.

``NodeServer`` is the daemon (``seattle-nodemanager``); ``open_node_client`` /
``NodeClient`` speak the protocol (docs/protocol.md) from the other side.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from seattlecore.lazy import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from nodemanager.errors import (
        BadResponse,
        ClientError,
        ConnectionFailed,
        NodeManagerError,
        RequestError,
        ResponseError,
    )
    from nodemanager.node.server import NodeServer, ServerConfig
    from nodemanager.node.vessels import ProgramRunner
    from nodemanager.proto.client import (
        ClientStats,
        LogChunk,
        NodeClient,
        NodeInfo,
        NodeStatus,
        VesselInfo,
        open_node_client,
    )

__getattr__ = _lazy_exports(__name__, {
    "nodemanager.proto.client": (
        "ClientStats", "LogChunk", "NodeClient", "NodeInfo", "NodeStatus", "VesselInfo",
        "open_node_client",
    ),
    "nodemanager.errors": (
        "BadResponse", "ClientError", "ConnectionFailed", "NodeManagerError", "RequestError",
        "ResponseError",
    ),
    "nodemanager.node.server": (
        "NodeServer", "ServerConfig",
    ),
    "nodemanager.node.vessels": (
        "ProgramRunner",
    ),
})

__all__ = [
    "BadResponse",
    "ClientError",
    "ClientStats",
    "ConnectionFailed",
    "LogChunk",
    "NodeClient",
    "NodeInfo",
    "NodeManagerError",
    "NodeServer",
    "NodeStatus",
    "ProgramRunner",
    "RequestError",
    "ResponseError",
    "ServerConfig",
    "VesselInfo",
    "open_node_client",
]
