"""The donor's local page (the BOINC Manager of this project) and ``/metrics``.

Starlette, served by Hypercorn's trio worker inside the node manager's own trio loop, on
127.0.0.1 only. Every page is rendered on the server (plain HTML forms, charts as inline
SVG): it reads and works without JavaScript, and the Content-Security-Policy allows none.
Who may use it: ``webguard`` (token, Host, Origin, the peer's uid; no CORS).

``serve_ui`` writes ``STATE/ui.port`` and ``STATE/ui.token`` (0600) once it listens;
``seattle-installer ui`` prints the link.
"""

from __future__ import annotations

import html
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nodemanager.donor.control import DonorControl
from nodemanager.donor.history import Sample
from nodemanager.donor.metrics import NodeCollector, render
from nodemanager.donor.policy import PolicyError
from nodemanager.donor.reshare import ReshareRequest
from nodemanager.donor.webguard import COOKIE, check, peer_uid
from nodemanager.node.model import NodeView
from seattlecore.keys import write_atomic

log = logging.getLogger(__name__)

PORT_FILE = "ui.port"
TOKEN_FILE = "ui.token"
MAX_FORM = 16 * 1024
HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY", "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin", "cache-control": "no-store",
}
DURATIONS = (("", "until I resume"), ("1h", "1 hour"), ("2h", "2 hours"), ("8h", "8 hours"))


@dataclass
class UiContext:
    """What the page shows and drives."""

    state_dir: Path
    view: Callable[[], NodeView]
    donor: DonorControl
    token: str
    port: int = 0
    own_uid: int = os.geteuid()


class Guard:
    """ASGI middleware: refuse what ``webguard.check`` refuses; add the security headers."""

    def __init__(self, app: ASGIApp, ctx: UiContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        client, server = scope.get("client"), scope.get("server")
        uid = peer_uid(tuple(client), tuple(server)) if client and server else None
        refusal = check(method=scope["method"], headers=headers, cookie=_cookie(headers),
                        query=(query.get("token") or [None])[0], expected=self.ctx.token,
                        port=self.ctx.port, peer_uid=uid, own_uid=self.ctx.own_uid)
        if refusal is not None:
            response: Response = PlainTextResponse(refusal.reason + "\n", refusal.status,
                                                   headers=HEADERS)
            await response(scope, receive, send)
            return
        if "token" in query:  # the link: keep the token in a cookie, not in the address bar
            response = RedirectResponse(scope["path"], 303, headers=HEADERS)
            response.set_cookie(COOKIE, self.ctx.token, httponly=True, samesite="strict",
                                path="/")
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (k.encode(), v.encode()) for k, v in HEADERS.items()]
            await send(message)
        await self.app(scope, receive, send_with_headers)


def _cookie(headers: Mapping[str, str]) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


async def _form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise PolicyError("the form is too large")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in fields.items()}


def _back(message: str, ok: bool = True) -> Response:
    return RedirectResponse("/?" + urlencode({"ok" if ok else "error": message}), 303)


def build_app(ctx: UiContext) -> ASGIApp:
    """The Starlette app wrapped in the guard."""
    collector = NodeCollector(ctx.view, ctx.donor.status)

    async def page(request: Request) -> Response:
        return Response(render_page(ctx, request.query_params.get("ok"),
                                     request.query_params.get("error")),
                        media_type="text/html; charset=utf-8")

    async def style(request: Request) -> Response:
        return Response(STYLE, media_type="text/css")

    async def metrics(request: Request) -> Response:
        return Response(render(collector), media_type="text/plain; version=0.0.4; charset=utf-8")

    def action(fn: Callable[[dict[str, str]], str]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return _back(fn(await _form(request)))
            except (PolicyError, ValueError) as exc:
                return _back(str(exc), ok=False)
        return endpoint

    def pause(form: dict[str, str]) -> str:
        duration = form.get("for", "")
        seconds = {"1h": 3600, "2h": 7200, "8h": 28800}.get(duration)
        if duration and seconds is None:
            raise ValueError("choose a duration from the list")
        ctx.donor.pause(None if seconds is None else time.time() + seconds)
        return "vessels paused" + (f" for {duration}" if duration else "")

    def resume(form: dict[str, str]) -> str:
        ctx.donor.resume()
        return "vessels resumed"

    def share(form: dict[str, str]) -> str:
        percent = float(form.get("percent", ""))
        error = ctx.donor.reshare_now(ReshareRequest(secrets.token_hex(8), percent))
        if error is not None:
            raise ValueError(error)
        return f"now donating {percent:g} %"

    def policy(form: dict[str, str]) -> str:
        lines = [line.strip() for line in form.get("schedule", "").splitlines() if line.strip()]
        busy = form.get("busy_above", "").strip()
        ctx.donor.change_policy(schedule=lines, busy_above=float(busy) if busy else None,
                                on_battery=form.get("on_battery") == "run")
        return "policy saved"

    routes = [Route("/", page), Route("/style.css", style), Route("/metrics", metrics),
              Route("/pause", action(pause), methods=["POST"]),
              Route("/resume", action(resume), methods=["POST"]),
              Route("/share", action(share), methods=["POST"]),
              Route("/policy", action(policy), methods=["POST"])]
    return Guard(Starlette(routes=routes), ctx)


# ---- rendering (pure, from the context's snapshots) ----

def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def chart(title: str, points: Sequence[tuple[float, float | None]], unit: str,
          top: float | None = None, now: float | None = None) -> str:
    """An inline SVG line chart of the last hour (pure)."""
    width, height, span = 360, 90, 3600.0
    now = now if now is not None else (points[-1][0] if points else time.time())
    values = [v for _, v in points if v is not None]
    peak = top if top is not None else max([*values, 1.0]) * 1.1
    coords = [f"{width * (1 - (now - t) / span):.1f},{height - height * v / peak:.1f}"
              for t, v in points if v is not None and now - t <= span]
    last = f"{values[-1]:.1f} {unit}" if values else "no data yet"
    line = (f'<polyline fill="none" stroke="#1d6fb8" stroke-width="2" points="{" ".join(coords)}"/>'
            if coords else "")
    return (f'<figure><figcaption>{_e(title)}: <b>{_e(last)}</b> (last hour, top {peak:.3g} '
            f'{_e(unit)})</figcaption><svg viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{_e(title)}"><rect width="{width}" '
            f'height="{height}" class="bg"/>{line}</svg></figure>')


def _charts(history: Sequence[Sample]) -> str:
    def series(pick: Callable[[Sample], float | None]) -> list[tuple[float, float | None]]:
        return [(s.at, pick(s)) for s in history]
    return "".join([
        chart("Your programs' CPU", series(lambda s: s.other_cpu), "%", 100),
        chart("Vessels' CPU", series(lambda s: s.vessels_cpu), "% of a core"),
        chart("Vessels' memory", series(lambda s: s.memory / 1e6), "MB"),
        chart("Vessels' disk", series(lambda s: s.disk / 1e6), "MB"),
        chart("Vessels' network", series(lambda s: s.net_rate / 1e3), "kB/s"),
    ])


def render_page(ctx: UiContext, ok: str | None = None, error: str | None = None) -> str:
    view = ctx.view()
    status = ctx.donor.status()
    policy: Mapping[str, Any] = status["policy"]  # type: ignore[assignment]
    paused = status.get("paused")
    state = (f'<p class="paused">Vessels are <b>paused</b>: {_e(paused)} ({_e(status["detail"])})</p>'
             if paused else '<p class="running">Vessels <b>run</b>'
             f' at {float(status["cpu_factor"]) * 100:.0f} % of their CPU share'  # type: ignore[arg-type]
             f'{" (machine idle)" if status.get("idle") else ""}.</p>')
    rows = []
    for name, vessel in sorted(view.vessels.items()):
        live = view.status_of(name)
        users = ", ".join(u.to_text()[:12] for u in vessel.users) or "-"
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(live.status)}"
            f"{' (paused: ' + _e(live.paused) + ')' if live.paused else ''}</td>"
            f"<td><code>{_e(vessel.owner.to_text()[:12])}</code> {_e(vessel.owner_info)}</td>"
            f"<td>{_e(users)}</td><td>{vessel.resources['cpu']:.3f}</td>"
            f"<td>{live.usage.get('cpu', 0.0):.1f} s</td>"
            f"<td>{live.usage.get('memory', 0.0) / 1e6:.1f} MB</td>"
            f"<td>{live.usage.get('diskused', 0.0) / 1e6:.2f} MB</td></tr>")
    reach = view.reachability or {}
    share = ctx.donor.percent()
    flash = "".join(f'<p class="{c}">{_e(m)}</p>' for c, m in (("ok", ok), ("error", error)) if m)
    options = "".join(f'<option value="{v}">{_e(t)}</option>' for v, t in DURATIONS)
    schedule = "\n".join(policy.get("schedule", []))
    busy = "" if policy.get("busy_above") is None else f'{policy["busy_above"]:g}'
    battery = "checked" if policy.get("on_battery") else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Seattle donor: {_e(view.node.to_text()[:12])}</title>
<link rel="stylesheet" href="/style.css"></head><body>
<h1>This machine's donation</h1>{flash}
<p>Node <code>{_e(view.node.to_text())}</code>, {_e(view.version)};
reachable: {_e(reach.get("tcp", "unknown"))}; {_e(status["mechanism"])}.</p>
{state}
<form method="post" action="/pause"><label>Pause <select name="for">{options}</select></label>
<button type="submit">Pause</button></form>
<form method="post" action="/resume"><button type="submit">Resume</button></form>
<h2>Vessels</h2>
<table><thead><tr><th>vessel</th><th>status</th><th>owner</th><th>users</th><th>CPU share</th>
<th>CPU used</th><th>memory</th><th>disk</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<h2>The last hour</h2><div class="charts">{_charts(list(ctx.donor.history))}</div>
<h2>Share</h2>
<form method="post" action="/share"><label>Donate <input name="percent" type="number" min="1"
max="100" step="1" value="{_e('' if share is None else f'{share:g}')}"> % of this machine</label>
<button type="submit">Change share</button></form>
<h2>When vessels run</h2>
<form method="post" action="/policy"><label>Schedule: windows when vessels do not run, one a line
(e.g. <code>Mon-Fri 09:00-18:00 off</code>)<br><textarea name="schedule" rows="3"
cols="40">{_e(schedule)}</textarea></label><br>
<label>Pause while my programs use more than <input name="busy_above" type="number" min="0"
max="100" value="{_e(busy)}"> % CPU (empty: never)</label><br>
<label><input type="checkbox" name="on_battery" value="run" {battery}> keep running on battery</label><br>
<button type="submit">Save</button></form>
<p><a href="/metrics">Prometheus metrics</a></p>
</body></html>
"""


STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;
color:#1a1a1a}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;
padding:.3rem;text-align:left}.paused{background:#fff3cd;padding:.5rem}.running{background:#e7f5e9;
padding:.5rem}.error{color:#a40000}.ok{color:#1b5e20}form{display:inline-block;margin:.3rem .6rem
.3rem 0}.charts{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}.bg{fill:#f6f8fa}
figcaption{font-size:.85rem}"""


async def serve_ui(ctx: UiContext, host: str = "127.0.0.1", *,
                   task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the page until cancelled; started with the port it listens on."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"{host}:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn")
    app = build_app(ctx)

    async def started(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(app, config, task_status=task_status)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(started)
        ctx.port = int(binds[0].rsplit(":", 1)[1])
        write_atomic(ctx.state_dir / TOKEN_FILE, ctx.token.encode(), mode=0o600)
        write_atomic(ctx.state_dir / PORT_FILE, f"{ctx.port}\n".encode(), mode=0o600)
        log.info("donor page on http://%s:%d/", host, ctx.port)
        task_status.started(ctx.port)


async def serve_ui_or_log(ctx: UiContext, *,
                          task_status: trio.TaskStatus[int | None] = trio.TASK_STATUS_IGNORED) -> None:
    """``serve_ui``, but a page that cannot listen is logged, not fatal to the node manager."""
    started = False

    class Status:
        def started(self, value: int | None = None) -> None:
            nonlocal started
            started = True
            task_status.started(value)

    try:
        await serve_ui(ctx, task_status=Status())
    except OSError as exc:
        log.error("no donor page: %s", exc)
        if not started:
            task_status.started(None)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def link(state_dir: Path) -> str:
    """The page's address with the token, from the files ``serve_ui`` wrote."""
    port = int((state_dir / PORT_FILE).read_text().strip())
    token = (state_dir / TOKEN_FILE).read_text().strip()
    return f"http://127.0.0.1:{port}/?token={quote(token)}"
