"""The donor's page in a real browser: Debian's chromium driven by Playwright (no download).

The browser opens the link, reads the vessels, pauses and resumes through the buttons,
changes the share and the schedule, and saves screenshots (copied into docs/img with
UPDATE_SCREENSHOTS=1). A page of another origin on the same host cannot pause the vessels.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import trio

from nodemanager import NodeClient, open_node_client
from nodemanager.donor.reshare import ReshareRequest, read_result, write_request
from nodemanager.donor.webui import PORT_FILE, link
from seattlecore import KeyPair
from tests.support.daemons import node_manager
from tests.support.polling import eventually
from tests.support.requires import requires
from tests.support.seash import init_node

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"  # the path tests/support/browser.py launches
ROOT = Path(__file__).parents[2]
DOCS_IMG = ROOT / "docs" / "img"
COUNTER = b"n = 0\nwhile True:\n    log('count', n, '\\n')\n    n = n + 1\n    sleep(0.1)\n"
needs_chromium = requires(Path(CHROMIUM).exists(), "Debian's chromium is not installed")


@needs_chromium
async def test_the_page_in_chromium(tmp_path: Path) -> None:
    owner = KeyPair.generate()
    state = tmp_path / "state"
    init_node(state, owner.public.to_text(), vessels=2)
    shots = tmp_path / "shots"
    shots.mkdir()
    async with (node_manager(state, sandbox=True, dht=False) as nm,
                open_node_client("127.0.0.1", nm.port, identity=owner) as client):
        await client.add_file("v1", "count.py", COUNTER)
        await client.start_vessel("v1", "count.py")
        await _learn_percent(state)
        before = await client.get_vessel_resources("v1")
        await eventually(lambda: (state / PORT_FILE).exists(), what="ui.port written")
        seen = await browse(link(state), shots)
        assert "v1" in seen["start"] and "Started" in seen["start"] and "Fresh" in seen["start"]
        assert owner.public.to_text()[:12] in seen["start"]
        assert "paused: manual" in seen["paused"], seen["paused"]
        assert "vessels paused for 2h" in seen["paused"]
        assert "Vessels run" in seen["resumed"]
        assert "now donating 20 %" in seen["share"]
        after = await client.get_vessel_resources("v1")
        assert after["cpu"] == pytest.approx(2 * before["cpu"], rel=1e-4)
        assert "paused: schedule" in seen["schedule"]
        assert "times are 00:00 to 24:00" in seen["bad schedule"]
        assert "Vessels run" in seen["no schedule"]
        assert "no valid token" in seen["no token"] and "v1" not in seen["no token"]
        assert "must come from this page" in seen["foreign origin"]
        assert await _paused(client) is None  # the foreign page paused nothing
    for name in ("donor-page.png", "donor-paused.png"):
        assert (shots / name).stat().st_size > 10_000
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            shutil.copyfile(shots / name, DOCS_IMG / name)


async def browse(url: str, shots: Path) -> dict[str, str]:
    """Run the browser in a process of its own (this one's asyncio policy is trio-asyncio's)."""
    done = await trio.run_process([sys.executable, "-m", "tests.support.browser", url, str(shots)],
                                  cwd=ROOT, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    seen: dict[str, str] = json.loads(done.stdout)
    return seen


async def _paused(client: NodeClient) -> str | None:
    return {v.name: v for v in (await client.get_vessels()).vessels}["v1"].paused


async def _learn_percent(state: Path) -> None:
    """What ``seattle-installer ui`` does: tell the node the percent its install donates."""
    request = ReshareRequest("learn", 10.0, 10.0)
    write_request(state, request)
    await eventually(lambda: read_result(state, "learn"), timeout=10)
