"""Each Repy API call, run inside a real vessel process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.vessels import HOST, RunProgram, on_host, table


async def test_log_args_runtime_and_normal_exit(run_program: RunProgram) -> None:
    out = await run_program(
        "log('args', callargs)\nprint('printed', 1, sep='-')\n"
        "t = getruntime()\nsleep(0.05)\nlog('slept', getruntime() - t >= 0.05)\n",
        args=("a", "b"),
    )
    assert "args ['a', 'b']" in out.log
    assert "printed-1" in out.log
    assert "slept True" in out.log
    assert out.report.status == "Terminated"
    assert out.report.exit_code == 0
    assert out.report.exit_reason == "program ended"


async def test_files(run_program: RunProgram, vessel_dir: Path) -> None:
    source = """
f = openfile('data.txt', True)
f.writeat('hello world', 0)
f.writeat(b'W', 6)
log('read', f.readat(None, 0), f.readat(3, 6))
try:
    openfile('data.txt', False)
except FileInUseError:
    log('in use')
try:
    f.readat(1, 100)
except SeekPastEndOfFileError:
    log('past end')
f.close()
try:
    f.readat(1, 0)
except FileClosedError:
    log('closed')
try:
    openfile('missing.txt', False)
except FileNotFoundError:
    log('not found')
for bad in ['../x', '/etc/passwd', 'UPPER', '.hidden', '', 'a' * 121, 'dir/file']:
    try:
        openfile(bad, True)
        log('ACCEPTED', bad)
    except RepyArgumentError:
        pass
log('list', listfiles())
removefile('data.txt')
log('after remove', listfiles())
"""
    out = await run_program(source)
    assert "read b'hello World' b'Wor'" in out.log
    for word in ("in use", "past end", "closed", "not found"):
        assert word in out.log
    assert "ACCEPTED" not in out.log
    assert "list ['data.txt', 'program.py']" in out.log
    assert "after remove ['program.py']" in out.log
    assert not (vessel_dir / "data.txt").exists()


async def test_threads_locks_and_threadname(run_program: RunProgram) -> None:
    source = """
lock = createlock()
done = []
def worker():
    lock.acquire(True)
    done.append(getthreadname())
    lock.release()
for i in range(3):
    createthread(worker)
sleep(0.3)
log('threads done', len(done), len(set(done)))
log('nonblocking', lock.acquire(False), lock.acquire(False))
lock.release()
try:
    lock.release()
except LockDoubleReleaseError:
    log('double release refused')
"""
    out = await run_program(source)
    assert "threads done 3 3" in out.log
    assert "nonblocking True False" in out.log
    assert "double release refused" in out.log


async def test_events_limit_and_thread_crash(run_program: RunProgram) -> None:
    source = """
def park():
    sleep(0.5)
count = 0
try:
    for i in range(100):
        createthread(park)
        count = count + 1
except ResourceExhaustedError:
    log('events limit after', count)
"""
    out = await run_program(source, resources=table(events=4))
    assert "events limit after 3" in out.log  # the main thread counts as one event
    crash = await run_program("def bad():\n    1 / 0\ncreatethread(bad)\nsleep(2)\n")
    assert crash.report.exit_reason == "uncaught exception in a thread"
    assert "ZeroDivisionError" in crash.log


async def test_randombytes_resources_lasterror_exitall(run_program: RunProgram) -> None:
    source = """
data = randombytes()
log('random', len(data), data != randombytes())
limits, usage, stops = getresources()
log('limits', limits['cpu'], sorted(limits['connport']), limits['events'])
log('usage keys', sorted(k for k in usage if k in ('cpu', 'memory', 'diskused', 'events')))
try:
    1 / 0
except ZeroDivisionError:
    log('lasterror', 'ZeroDivisionError' in getlasterror())
log('no error now', getlasterror())
log('ip', getmyip())
exitall()
log('NOT REACHED')
"""
    out = await run_program(source)
    assert "random 1024 True" in out.log
    assert "limits 0.5 [63100, 63101, 63104, 63105] 6" in out.log  # ports are a set, counts ints
    assert "usage keys ['cpu', 'diskused', 'events', 'memory']" in out.log
    assert "lasterror True" in out.log
    assert "no error now None" in out.log
    assert "ip 127.0.0.1" in out.log
    assert "NOT REACHED" not in out.log
    assert out.report.exit_reason == "exitall() called"


async def test_virtual_namespace(run_program: RunProgram) -> None:
    source = """
ns = createvirtualnamespace("result = base * 2\\nlog('inside', base)", 'child')
out = ns.evaluate({'base': 21, 'log': log})  # a namespace sees only its context
log('result', out['result'])
try:
    createvirtualnamespace('import os', 'bad')
except CodeUnsafeError:
    log('unsafe refused')
try:
    ns.evaluate({'_secret': 1})
except ContextUnsafeError:
    log('context refused')
"""
    out = await run_program(source)
    assert "inside 21" in out.log
    assert "result 42" in out.log
    assert "unsafe refused" in out.log
    assert "context refused" in out.log


async def test_tcp_and_udp_on_granted_ports(run_program: RunProgram) -> None:
    source = """
server = listenforconnection('127.0.0.1', 63104)
client = openconnection('127.0.0.1', 63104, '127.0.0.1', 63105, 5)
conn = None
while conn is None:
    try:
        ip, port, conn = server.getconnection()
    except SocketWouldBlockError:
        sleep(0.01)
client.send('ping')
got = b''
while not got:
    try:
        got = conn.recv(100)
    except SocketWouldBlockError:
        sleep(0.01)
log('tcp', got, ip, port)
log('close', client.close(), client.close())
udp = listenformessage('127.0.0.1', 63100)
sent = sendmessage('127.0.0.1', 63100, b'dgram', '127.0.0.1', 63101)
msg = None
while msg is None:
    try:
        msg = udp.getmessage()
    except SocketWouldBlockError:
        sleep(0.01)
log('udp', sent, msg[2], msg[1])
try:
    listenforconnection('127.0.0.1', 1)
except ResourceForbiddenError:
    log('port 1 forbidden')
try:
    sendmessage('127.0.0.1', 9, 'x', '127.0.0.1', 5555)
except ResourceForbiddenError:
    log('messport forbidden')
try:
    sendmessage('127.0.0.1', 9, 'x' * 9217, '127.0.0.1', 63100)
except RepyArgumentError:
    log('datagram too big')
try:
    listenforconnection('127.0.0.1', 63104)
except AlreadyListeningError:
    log('already listening')
log('resolve', gethostbyname('localhost'))
"""
    out = await run_program(on_host(source))
    assert f"tcp b'ping' {HOST} 63105" in out.log
    assert "close True False" in out.log
    assert "udp 5 b'dgram' 63101" in out.log
    for word in ("port 1 forbidden", "messport forbidden", "datagram too big", "already listening"):
        assert word in out.log
    assert "resolve 127.0.0.1" in out.log


async def test_socket_count_limits(run_program: RunProgram) -> None:
    source = """
held = []
try:
    for port in [63100, 63101, 63100]:
        held.append(listenformessage('127.0.0.1', port))
        held.append(listenforconnection('127.0.0.1', port))
except ResourceExhaustedError:
    log('stopped at', len(held), 'ResourceExhaustedError')
"""
    out = await run_program(on_host(source), resources=table(insockets=3))
    assert "stopped at 3 ResourceExhaustedError" in out.log


@pytest.mark.parametrize("kind", ["str", "int"])
async def test_subclass_arguments_refused(run_program: RunProgram, kind: str) -> None:
    source = {
        "str": "class P(str):\n    pass\ntry:\n    openfile(P('x.txt'), True)\n"
               "except RepyArgumentError:\n    log('refused')\n",
        "int": "class I(int):\n    pass\ntry:\n    sleep(I(1))\n"
               "except RepyArgumentError:\n    log('refused')\n",
    }[kind]
    out = await run_program(source)
    assert "refused" in out.log


async def test_user_classes_and_writes(run_program: RunProgram) -> None:
    source = """
class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y
    def norm(self):
        return self.x * self.x + self.y * self.y
p = Point(3, 4)
setattr(p, 'z', 5)
counts = {}
for k, v in [('a', 1), ('b', 2), ('a', 3)]:
    counts[k] = counts.get(k, 0) + v
log('norm', p.norm(), p.z, counts)
for target in [log, createlock(), callargs.append]:
    try:
        setattr(target, 'planted', 1)
        log('PLANTED')
    except Exception:
        pass
try:
    openfile('NOPE', False)
except RepyArgumentError as err:
    try:
        err.obj
    except PolicyViolation:
        log('obj refused')
"""
    out = await run_program(source)
    assert "norm 25 5 {'a': 4, 'b': 2}" in out.log
    assert "PLANTED" not in out.log
    assert "obj refused" in out.log


async def test_augmented_assignment_on_attributes_and_items(run_program: RunProgram) -> None:
    source = """
class Counter:
    def __init__(self):
        self.n = 0
c = Counter()
c.n += 5
counts = {'a': 0}
calls = []
def key():
    calls.append(1)
    return 'a'
counts[key()] += 100
nums = [1, 2]
nums[0] *= 10
log('aug', c.n, counts['a'], nums, len(calls))
lock = createlock()
try:
    lock.x += 1
except Exception:
    log('api object refused')
"""
    out = await run_program(source)
    assert "aug 5 100 [10, 2] 1" in out.log
    assert "api object refused" in out.log


async def test_deep_recursion_raises_cleanly_in_threads_too(run_program: RunProgram) -> None:
    source = """
def down(n):
    return down(n + 1)
def worker():
    try:
        down(0)
    except RecursionError:
        log('thread recursion ok')
    nest = []
    for i in range(100000):
        nest = [nest]
    try:
        repr(nest)
    except RecursionError:
        log('thread repr ok')
createthread(worker)
try:
    down(0)
except RecursionError:
    log('main recursion ok')
sleep(0.5)
"""
    out = await run_program(source)
    for line in ("thread recursion ok", "thread repr ok", "main recursion ok"):
        assert line in out.log
    assert out.report.exit_code == 0
