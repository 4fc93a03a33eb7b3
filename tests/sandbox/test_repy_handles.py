"""Handle lifetime in a real vessel: what a program drops is closed, as Seattle did."""

from __future__ import annotations

from tests.support.vessels import RunProgram, on_host


async def test_dropped_handles_are_closed_and_their_items_return(run_program: RunProgram) -> None:
    source = """
def held():
    lim, use, stops = getresources()
    return use['filesopened'], use['insockets'], use['outsockets']

f = openfile('a.txt', True)
server = listenforconnection('127.0.0.1', 63104)
client = openconnection('127.0.0.1', 63104, '127.0.0.1', 63105, 5)
ip, port, conn = server.getconnection()
log('open', held())
f = None
server = None
client = None
conn = None
log('dropped', held())
removefile('a.txt')                                   # no FileInUseError
again = listenforconnection('127.0.0.1', 63104)       # no AlreadyListeningError
for i in range(6):                                    # more than filesopened (4)
    openfile('b' + str(i), True)
log('reused fine')
"""
    out = await run_program(on_host(source))
    assert "open (1, 1, 2)" in out.log, out.log
    assert "dropped (0, 0, 0)" in out.log, out.log
    assert "reused fine" in out.log and out.report.exit_code == 0, out.log
