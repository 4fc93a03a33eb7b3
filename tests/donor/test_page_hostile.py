"""The donor page against an attacker speaking HTTP on the socket (not through a browser):
missing or wrong token, a foreign Host (DNS rebinding) or Origin, CORS preflights, another
local uid, oversized and malformed requests. The node manager keeps serving throughout, and
``/metrics`` parses with Prometheus' own text parser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from nodemanager import open_node_client
from nodemanager.donor.control import load_policy
from nodemanager.donor.webguard import Refusal, check, uid_from_proc_tcp
from nodemanager.donor.webui import PORT_FILE, TOKEN_FILE
from seattlecore import KeyPair
from tests.support.daemons import node_manager
from tests.support.polling import eventually
from tests.support.requires import requires
from tests.support.seash import init_node

pytestmark = pytest.mark.slow
needs_root = requires(os.geteuid() == 0, "acting as another uid needs root")


async def http(port: int, raw: bytes) -> bytes:
    """Send ``raw`` as is; return everything the server answers until it closes (or 5 s)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        try:
            await stream.send_all(raw)
        except trio.BrokenResourceError:
            pass  # the server answered and closed before taking it all (oversized requests)
        data = b""
        with trio.move_on_after(5):
            while chunk := await _receive(stream):
                data += chunk
                if b"\r\n\r\n" in data and _complete(data):
                    break
    return data


async def _receive(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(65536)
    except trio.BrokenResourceError:  # reset after an early answer: what came is the answer
        return b""


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def request(method: str, path: str, port: int, *, token: str | None = None, host: str | None = None,
            origin: str | None = None, body: bytes = b"", extra: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Connection: close"]
    if token is not None:
        lines.append(f"Cookie: seattle_ui={token}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if body:
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + extra + "\r\n\r\n").encode() + body


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_guard_rules_are_pure_and_strict() -> None:
    ok = {"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}
    args = {"expected": "t" * 43, "port": 8000, "own_uid": 1000}
    assert check(method="POST", headers=ok, cookie="t" * 43, query=None, peer_uid=1000, **args) is None
    assert check(method="GET", headers={"host": "localhost:8000"}, cookie=None, query="t" * 43,
                 peer_uid=0, **args) is None
    refusals = [
        check(method="GET", headers=ok, cookie="t" * 43, query=None, peer_uid=1001, **args),
        check(method="GET", headers=ok, cookie="t" * 43, query=None, peer_uid=None, **args),
        check(method="GET", headers={"host": "evil.example:8000"}, cookie="t" * 43, query=None,
              peer_uid=1000, **args),
        check(method="GET", headers={"host": "127.0.0.1:8001"}, cookie="t" * 43, query=None,
              peer_uid=1000, **args),
        check(method="POST", headers={"host": "127.0.0.1:8000", "origin": "null"},
              cookie="t" * 43, query=None, peer_uid=1000, **args),
        check(method="POST", headers={"host": "127.0.0.1:8000"}, cookie="t" * 43, query=None,
              peer_uid=1000, **args),
        check(method="GET", headers=ok, cookie="t" * 42 + "u", query=None, peer_uid=1000, **args),
        check(method="GET", headers=ok, cookie=None, query=None, peer_uid=1000, **args),
        check(method="OPTIONS", headers=ok, cookie="t" * 43, query=None, peer_uid=1000, **args),
    ]
    assert [type(r) for r in refusals] == [Refusal] * len(refusals)
    assert [r.status for r in refusals if r] == [403, 403, 421, 421, 403, 403, 401, 401, 405]


def test_proc_net_tcp_uid_lookup() -> None:
    text = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
            "   0: 0100007F:9C40 0100007F:1F40 01 00000000:00000000 00:00000000 00000000  1000"
            "        0 1234 1 0000000000000000 20 4 30 10 -1\n")
    assert uid_from_proc_tcp(text, ("127.0.0.1", 40000), ("127.0.0.1", 8000)) == 1000
    assert uid_from_proc_tcp(text, ("127.0.0.1", 40001), ("127.0.0.1", 8000)) is None


OTHER_UID = """
import encodings.idna, os, socket, sys
port, token = int(sys.argv[1]), sys.argv[2]
os.setgid(65534); os.setuid(65534)
s = socket.socket()
s.connect(("127.0.0.1", port))
s.sendall(f"GET / HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\nCookie: seattle_ui={token}\\r\\n"
          f"Connection: close\\r\\n\\r\\n".encode())
print(s.recv(200).split(b" ")[1].decode())
"""


async def test_attacker_is_refused_and_the_page_keeps_serving(tmp_path: Path) -> None:
    owner = KeyPair.generate()
    state = tmp_path / "state"
    init_node(state, owner.public.to_text(), vessels=2)
    async with node_manager(state, sandbox=True, dht=False) as nm:
        await eventually(lambda: (state / PORT_FILE).exists(), what="ui.port written")
        port = int((state / PORT_FILE).read_text())
        token = (state / TOKEN_FILE).read_text().strip()
        assert (state / TOKEN_FILE).stat().st_mode & 0o077 == 0
        good = await http(port, request("GET", "/", port, token=token))
        assert status_of(good) == 200 and b"v1" in good
        assert b"access-control-allow" not in good.lower()

        answers = {
            "no token": await http(port, request("GET", "/", port)),
            "wrong token": await http(port, request("GET", "/", port, token="x" * 43)),
            "token in a bad query": await http(port, request("GET", "/?token=%00%ff", port)),
            "rebinding host": await http(port, request("GET", "/", port, token=token,
                                                       host=f"evil.example:{port}")),
            "no host": await http(port, b"GET / HTTP/1.0\r\n\r\n"),
            "foreign origin": await http(port, request("POST", "/pause", port, token=token,
                                                       origin="http://evil.example", body=b"for=")),
            "no origin": await http(port, request("POST", "/pause", port, token=token, body=b"for=")),
            "preflight": await http(port, request(
                "OPTIONS", "/pause", port, token=token, origin="http://evil.example",
                extra="\r\nAccess-Control-Request-Method: POST")),
            "metrics without token": await http(port, request("GET", "/metrics", port)),
        }
        codes = {name: status_of(answer) for name, answer in answers.items()}
        assert codes.pop("no host") in (400, 421)  # h11 or the guard: refused either way
        assert codes == {"no token": 401, "wrong token": 401, "token in a bad query": 401,
                         "rebinding host": 421,
                         "foreign origin": 403, "no origin": 403, "preflight": 405,
                         "metrics without token": 401}
        for answer in answers.values():
            assert b"access-control-allow" not in answer.lower()
            assert b"v1" not in answer.split(b"\r\n\r\n", 1)[-1]
        assert load_policy(state / "donor.json").paused is False  # nothing changed

        origin = f"http://127.0.0.1:{port}"
        huge = await http(port, request("POST", "/policy", port, token=token, origin=origin,
                                        body=b"schedule=" + b"A" * 200_000))
        assert status_of(huge) == 303 and b"error=" in huge
        bad = await http(port, request("POST", "/share", port, token=token, origin=origin,
                                       body=b"percent=lots"))
        assert status_of(bad) == 303 and b"error=" in bad
        await http(port, b"\x16\x03\x01\x02\x00garbage-tls-hello\r\n\r\n")
        await http(port, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n")
        assert load_policy(state / "donor.json").paused is False

        if os.geteuid() == 0:
            other = await trio.run_process([sys.executable, "-c", OTHER_UID, str(port), token],
                                           capture_stdout=True, capture_stderr=True, check=False)
            assert other.returncode == 0, other.stderr
            assert other.stdout.strip() == b"403"  # even holding the token

        paused = await http(port, request("POST", "/pause", port, token=token, origin=origin,
                                          body=b"for=1h"))
        assert status_of(paused) == 303 and load_policy(state / "donor.json").paused is True

        metrics = await http(port, request("GET", "/metrics", port, token=token))
        assert status_of(metrics) == 200
        text = metrics.split(b"\r\n\r\n", 1)[1].decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert {"seattle_vessels", "seattle_vessel_cpu_seconds", "seattle_vessel_paused",
                "seattle_donor_paused", "seattle_port_connections"} <= set(families)
        donor = {s.labels["reason"]: s.value for s in families["seattle_donor_paused"].samples}
        assert donor["manual"] == 1.0 and donor["busy"] == 0.0
        vessels = {s.labels["status"]: s.value for s in families["seattle_vessels"].samples}
        assert vessels["Fresh"] == 2.0

        async with open_node_client("127.0.0.1", nm.port) as client:  # still serving
            assert len((await client.get_vessels()).vessels) == 2
        assert nm.process.returncode is None


@needs_root
def test_another_uid_cannot_read_the_token(tmp_path: Path) -> None:
    """The token file is the node manager user's alone (0600 in its state directory)."""
    secret = tmp_path / TOKEN_FILE
    secret.write_text("token")
    secret.chmod(0o600)
    done = subprocess.run([sys.executable, "-c", f"import os; os.setuid(65534); open({str(secret)!r})"],
                          capture_output=True, check=False)
    assert done.returncode != 0 and b"PermissionError" in done.stderr
