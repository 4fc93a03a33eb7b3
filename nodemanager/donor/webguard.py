"""Who may use the donor's local page: the checks (pure) and the peer's uid (from /proc).

The page listens on 127.0.0.1 only. A request is served only when all of these hold:

- ``Host`` is ``127.0.0.1:PORT`` or ``localhost:PORT`` (a DNS-rebinding page names its own
  host, so it is refused);
- a state-changing request (POST) carries an ``Origin`` of this very page (another site's
  form or script is refused; no CORS headers are ever sent, and OPTIONS is not allowed);
- the token (32 random bytes, in ``STATE/ui.token``, mode 0600) comes as the ``seattle_ui``
  cookie, a ``token`` query parameter (the link ``seattle-installer ui`` prints, answered
  with the cookie and a redirect that drops it from the address), or ``Authorization:
  Bearer`` (for a metrics scraper); compared in constant time;
- the connecting socket belongs to the node manager's own uid or root (looked up in
  ``/proc/net/tcp``: other local users are refused even if they got hold of the token).
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

COOKIE = "seattle_ui"
LOCAL_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str


def host_ok(host: str | None, port: int) -> bool:
    return host is not None and host.lower() in {f"{h}:{port}" for h in LOCAL_HOSTS}


def origin_ok(origin: str | None, port: int) -> bool:
    return origin is not None and origin.lower() in {f"http://{h}:{port}" for h in LOCAL_HOSTS}


def token_ok(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def check(*, method: str, headers: Mapping[str, str], cookie: str | None, query: str | None,
          expected: str, port: int, peer_uid: int | None, own_uid: int) -> Refusal | None:
    """Why a request is refused (pure), or None to serve it. ``headers``: lower-case names."""
    if peer_uid is None or peer_uid not in (own_uid, 0):
        return Refusal(403, "this page is for the node manager's own user only")
    if not host_ok(headers.get("host"), port):
        return Refusal(421, "wrong Host: open the page at 127.0.0.1 or localhost")
    if method not in ("GET", "HEAD", "POST"):
        return Refusal(405, "method not allowed")
    if method == "POST" and not origin_ok(headers.get("origin"), port):
        return Refusal(403, "a change must come from this page (Origin)")
    bearer = headers.get("authorization", "")
    presented = [cookie, query, bearer[7:] if bearer.lower().startswith("bearer ") else None]
    if not any(token_ok(t, expected) for t in presented):
        return Refusal(401, "no valid token: open the link 'seattle-installer ui' prints")
    return None


def _hex_addr(host: str, port: int) -> str:
    """``/proc/net/tcp`` spelling of an IPv4 address and port (little-endian hex)."""
    packed = socket.inet_aton(host)
    return f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"


def uid_from_proc_tcp(text: str, local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The uid owning the TCP socket ``local`` -> ``remote`` in a /proc/net/tcp text (pure)."""
    want = (_hex_addr(*local), _hex_addr(*remote))
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and (fields[1], fields[2]) == want:
            return int(fields[7])
    return None


def peer_uid(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid of the process whose socket connects from ``client`` to ``server`` (IPv4)."""
    try:
        if ipaddress.ip_address(client[0]).version != 4:
            return None
        text = Path("/proc/net/tcp").read_text()
    except (OSError, ValueError):
        return None
    return uid_from_proc_tcp(text, client, server)
