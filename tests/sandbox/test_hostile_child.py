"""The supervisor treats everything a vessel child says as hostile.

These programs run with the language layer off (``restricted=False``), standing in for code
that escaped the interpreter: the OS layers and the supervisor must still hold.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import Compiled, CompileFailed, compile_program
from tests.support.vessels import RunProgram

FORGE = """
import os
forged = 0
for fd in range(3, 64):
    try:
        os.write(fd, b'garbage\\n' + b'x' * 70000 + b'\\n')
        os.write(fd, b'{"event": "exit", "code": 0, "reason": "forged"}\\n')
        os.write(fd, b'{"event": "ready", "protection": "none", "rss": 999999999999}\\n')
        forged = forged + 1
    except OSError:
        pass
log('forged on', forged, 'descriptors')
os._exit(5)
"""


async def test_forged_status_lines_do_not_change_the_story(run_program: RunProgram) -> None:
    out = await run_program(FORGE, restricted=False)
    assert "forged on 0 " not in out.log and "forged on" in out.log  # the channel was hit
    assert out.report.exit_code == 5
    assert out.report.protection != "none"  # the runner's own "ready" stands
    assert out.report.exit_reason == "exited with code 5"
    assert out.report.status == "Terminated"


async def test_escaped_code_still_meets_the_os_layers(run_program: RunProgram) -> None:
    source = """
import os, socket
results = []
for name, attempt in [
    ('fork', lambda: os.fork()),
    ('exec', lambda: os.execv('/bin/true', ['true'])),
    ('read /etc/shadow', lambda: open('/etc/shadow').read()),
    ('write /tmp', lambda: open('/tmp/escaped-vessel-marker', 'w').write('x')),
    ('unix socket', lambda: socket.socket(socket.AF_UNIX)),
    ('bind port 80', lambda: socket.socket().bind(('127.0.0.1', 80))),
]:
    try:
        attempt()
        results.append(name + ' ESCAPED')
    except OSError:
        results.append(name + ' refused')
log(results)
"""
    out = await run_program(source, restricted=False)
    assert "ESCAPED" not in out.log, out.log
    assert out.log.count("refused") == 6, out.log


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_compiler_never_raises_on_any_text(source: str) -> None:
    assert isinstance(compile_program(source), Compiled | CompileFailed)
