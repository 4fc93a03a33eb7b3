"""The donor-side node manager: owns vessels and answers signed requests.

``NodeServer`` is the daemon (``seattle-nodemanager``); ``open_node_client`` /
``NodeClient`` speak the protocol (docs/protocol.md) from the other side.
"""

from nodemanager.client import (
    ClientStats,
    LogChunk,
    NodeClient,
    NodeInfo,
    NodeStatus,
    VesselInfo,
    open_node_client,
)
from nodemanager.errors import (
    BadResponse,
    ClientError,
    ConnectionFailed,
    NodeManagerError,
    RequestError,
    ResponseError,
)
from nodemanager.server import NodeServer, ServerConfig
from nodemanager.vessels import ProgramRunner

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
