"""Drive the donor's page in headless Chromium (Debian's, through Playwright: no download).

Run as ``python -m tests.support.browser URL SHOTS_DIR``: a process of its own, because a
test process has trio-asyncio's event loop policy installed and Playwright's sync API needs
asyncio's own. Prints what the page showed at each step as one JSON object.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


@contextmanager
def foreign_site(target: str) -> Iterator[str]:
    """A page on another 127.0.0.1 port whose button posts to the donor page's /pause."""
    page = (f'<!doctype html><form method="post" action="{target}/pause">'
            '<button id="go" type="submit">win a prize</button></form>').encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def browse(url: str, shots: Path) -> dict[str, str]:
    """Drive the page; return what it showed at each step (text), for the test to check."""
    from playwright.sync_api import sync_playwright

    seen: dict[str, str] = {}
    base = url.split("/?", 1)[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(java_script_enabled=False, viewport={"width": 1000, "height": 900})
        page = context.new_page()
        page.goto(url)
        assert "token=" not in page.url  # the token moved into a cookie
        seen["start"] = page.inner_text("body")
        page.screenshot(path=str(shots / "donor-page.png"), full_page=True)

        page.select_option("select[name=for]", "2h")
        page.click("button:has-text('Pause')")
        seen["paused"] = page.inner_text("body")
        page.screenshot(path=str(shots / "donor-paused.png"), full_page=True)
        page.click("button:has-text('Resume')")
        seen["resumed"] = page.inner_text("body")

        if "resumed" in seen and "Change share" not in seen["resumed"]:
            raise AssertionError(page.content()[:3000])
        page.fill("input[name=percent]", "20")
        page.click("button:has-text('Change share')")
        seen["share"] = page.inner_text("body")
        page.fill("textarea[name=schedule]", "Mon-Sun 00:00-24:00 off")
        page.click("button:has-text('Save')")
        seen["schedule"] = page.inner_text("body")
        page.fill("textarea[name=schedule]", "Mon-Fri 25:00-26:00")
        page.click("button:has-text('Save')")
        seen["bad schedule"] = page.inner_text("body")
        page.fill("textarea[name=schedule]", "")
        page.click("button:has-text('Save')")
        seen["no schedule"] = page.inner_text("body")

        stranger = browser.new_context(java_script_enabled=False).new_page()
        stranger.goto(base + "/")
        seen["no token"] = stranger.inner_text("body")
        with foreign_site(base) as evil:
            page.goto(evil)  # the donor's own browser, with the cookie, visits another site
            page.click("#go")
            seen["foreign origin"] = page.inner_text("body")
        browser.close()
    return seen


def main() -> None:
    print(json.dumps(browse(sys.argv[1], Path(sys.argv[2]))))


if __name__ == "__main__":
    main()
