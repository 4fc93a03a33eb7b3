"""The address vessels get as ``getmyip()``: the node manager's specific IPv4 listen address."""

from __future__ import annotations

import pytest

from nodemanager.__main__ import vessel_ip


@pytest.mark.parametrize(("listen", "expected"), [
    ("127.1.3.1", "127.1.3.1"),
    ("198.18.10.1", "198.18.10.1"),
    ("0.0.0.0", "127.0.0.1"),
    ("::", "127.0.0.1"),
    ("::1", "127.0.0.1"),
    ("localhost", "127.0.0.1"),
    ("example.org", "127.0.0.1"),
])
def test_vessel_ip(listen: str, expected: str) -> None:
    assert vessel_ip(listen) == expected
