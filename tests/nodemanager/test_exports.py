"""The package's public surface is exactly ``__all__``; the CLI parses its options."""

from __future__ import annotations

import nodemanager
from nodemanager import errors
from nodemanager.__main__ import host_port


def test_all_is_exact() -> None:
    assert sorted(nodemanager.__all__) == [
        "BadResponse", "ClientError", "ClientStats", "ConnectionFailed", "LogChunk", "NodeClient",
        "NodeInfo", "NodeManagerError", "NodeServer", "NodeStatus", "ProgramRunner",
        "RequestError", "ResponseError", "ServerConfig", "VesselInfo", "open_node_client",
    ]
    assert all(hasattr(nodemanager, name) for name in nodemanager.__all__)


def test_error_codes_are_unique_and_round_trip() -> None:
    codes = [cls.code for cls in errors.REQUEST_ERRORS]
    assert len(codes) == len(set(codes))
    for cls in errors.REQUEST_ERRORS:
        assert type(errors.error_for_code(cls.code, "m")) is cls
    assert type(errors.error_for_code("Novel", "m")) is errors.RequestError


def test_host_port() -> None:
    assert host_port("127.0.0.1:0") == ("127.0.0.1", 0)
    assert host_port("[::1]:80") == ("::1", 80)
