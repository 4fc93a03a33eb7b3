"""Pure cores of the sandbox: resources, policy, nanny, CPU throttle, log ring."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sandbox
from sandbox import (
    DEFAULT_OFFCUT,
    Compiled,
    CompileFailed,
    ResourceMathError,
    ResourceParseError,
    ResourceTable,
    compile_program,
    join_resources,
    parse_resources,
    split_resources,
)
from sandbox.process.limits import CpuThrottle, LogRing, check_quantities, decode_log, encode_log
from sandbox.repy import ResourceExhaustedError, ResourceForbiddenError
from sandbox.resources import NUMERIC, RENEWABLE
from sandbox.vessel.nanny import Nanny, RateBucket
from tests.support.vessels import table


def test_exports() -> None:
    assert set(sandbox.__all__) == {
        "DEFAULT_OFFCUT", "KINDS", "CompileFailed", "Compiled", "ResourceMathError",
        "ResourceParseError", "ResourceTable", "SandboxError", "Supervisor", "Usage",
        "VesselBusyError", "VesselNotRunning", "VesselReport", "VesselStatus",
        "compile_program", "join_resources", "parse_resources", "split_resources", "total",
        "LogSlice", "ProgramCompileError", "ProgramStartError", "UidExhausted",
    }
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None


def test_parse_round_trip_and_all_kinds() -> None:
    parsed = table()
    assert parse_resources(parsed.to_text()) == parsed
    assert parsed["cpu"] == 0.5 and parsed.ports("connport") == {63100, 63101, 63104, 63105}
    assert len(sandbox.KINDS) == 17


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("resource cpu 1\nresource memory 1\n", "diskused"),
        ("resource cpu 1\nresource memory 1\nresource diskused 1\nresource cpu 2\n", "line 4"),
        ("resource cpu x\n", "line 1"),
        ("resource gpu 1\n", "unknown resource"),
        ("cpu 1\n", "expected"),
        ("resource cpu -1\n", "line 1"),
        ("resource connport 70000\nresource cpu 1\n", "port"),
        ("resource memory 1000.5\n", "line 1: memory 1000.5 would be rounded to 1000.0"),
        ("resource cpu 0.1234567\n", "would be rounded to 0.123457"),
        ("resource cpu 123456789012345.123456\n", "15 significant digits"),
        ("resource diskused 1e16\n", "above the maximum"),
        ("resource cpu -0\n", "unsigned decimal"),
        ("resource cpu 1_0\n", "unsigned decimal"),
        ("resource cpu inf\n", "unsigned decimal"),
        ("resource cpu nan\n", "unsigned decimal"),
        ("resource connport 63100.5\n", "whole number"),
        ("resource connport 63100\nresource connport 63100\n", "line 2: connport 63100 given twice"),
        ("resource cpu 1 2\n", "expected"),
        ("resource cpu\x0c1\n", "expected"),
        ("resource cpu 1\u00a0\n", "unsigned decimal"),
        ("Resource cpu 1\n", "expected"),
    ],
)
def test_parse_errors_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(ResourceParseError, match=needle):
        parse_resources(text)


def test_exact_values_in_every_accepted_spelling() -> None:
    parsed = parse_resources("resource cpu 0.123456\nresource memory 1e6\n"
                             "resource diskused 1000.000\nresource lograte 1.5E+3\n"
                             "resource filewrite 7.\n")
    assert (parsed["cpu"], parsed["memory"], parsed["diskused"]) == (0.123456, 1e6, 1000)
    assert (parsed["lograte"], parsed["filewrite"]) == (1500, 7)
    crlf = parse_resources("resource cpu 1\r\nresource memory 2\rresource diskused 3\t# c\n")
    assert (crlf["cpu"], crlf["memory"], crlf["diskused"]) == (1, 2, 3)
    with pytest.raises(ResourceParseError, match="rounded"):
        ResourceTable.from_dict({"cpu": 0.1, "memory": 1000.5, "diskused": 1})


def test_comments_and_call_lines_are_accepted() -> None:
    parsed = parse_resources("# c\nresource cpu .1 # x\ncall gethostbyname allow\n"
                             "resource memory 5\nresource diskused 6\n")
    assert parsed["cpu"] == 0.1 and parsed["events"] == 0


_values = st.fixed_dictionaries({
    kind: (st.integers(0, 10**6).map(lambda n: n / 1000) if kind in RENEWABLE
           else st.integers(0, 10**9))
    for kind in NUMERIC
})


@settings(max_examples=200, deadline=None)
@given(_values, st.data())
def test_split_then_join_conserves_exactly(values: dict[str, float], data: st.DataObject) -> None:
    original = ResourceTable(values, connport=frozenset({1000, 1001}))
    requested_values = {
        k: data.draw(st.floats(0, 1).map(lambda f, v=v, k=k: (round(v * f, 3) if k in RENEWABLE
                                                                 else int(v * f))))
        for k, v in values.items()
    }
    requested = ResourceTable(requested_values, connport=frozenset({1000}))
    try:
        leftover, got = split_resources(original, requested)
    except ResourceMathError:
        return
    assert join_resources(leftover, got) == original
    assert (leftover + got + DEFAULT_OFFCUT).values == original.values
    assert 1000 not in leftover.connport


def test_split_refuses_too_large_and_foreign_ports() -> None:
    with pytest.raises(ResourceMathError, match="too large"):
        split_resources(table(), table(cpu=0.5))
    with pytest.raises(ResourceMathError, match="ports"):
        split_resources(table(), ResourceTable({"cpu": 0.1}, connport=frozenset({9999})))


def test_policy_refuses_with_line_numbers() -> None:
    result = compile_program("x = 1\nimport os\n")
    assert isinstance(result, CompileFailed) and result.errors[0].startswith("Line 2:")
    assert isinstance(compile_program("x = 1\ny = x.__class__\n"), CompileFailed)
    assert isinstance(compile_program("s = 'a__b'\n"), CompileFailed)
    assert isinstance(compile_program("x.mro()\n"), CompileFailed)
    assert isinstance(compile_program(b"\xff\xfe"), CompileFailed)
    assert isinstance(compile_program("def f(:\n"), CompileFailed)
    assert compile_program("x = 1\n*0\n") == CompileFailed(
        ("Line 2: SyntaxError: can't use starred expression here",))  # found by the fuzz test
    warned = compile_program("x = 1if 1 else 2\n")  # CPython warns; we keep it as data
    assert isinstance(warned, Compiled)
    assert warned.warnings == ("Line 1: SyntaxWarning: invalid decimal literal",)
    assert isinstance(compile_program("x = [i * 2 for i in range(3)]\n"), Compiled)
    assert isinstance(compile_program("d = {}\nd[1] += 2\nd.x += 1\n"), Compiled)
    assert isinstance(compile_program("d = {}\nd.mro += 1\n"), CompileFailed)
    assert isinstance(compile_program("d = {}\nd[().__class__] += 1\n"), CompileFailed)


def test_rate_bucket_waits_in_proportion() -> None:
    bucket = RateBucket(limit=1000.0)
    assert bucket.charge(100, now=0.0) == 0.0  # within the 0.1 s burst
    assert bucket.charge(1000, now=0.0) == pytest.approx(1.0)
    assert bucket.charge(0, now=2.0) == 0.0  # drained
    assert RateBucket(limit=0.0).charge(1, now=0.0) == float("inf")


def test_nanny_throughput_matches_limit_with_fake_clock() -> None:
    clock = [0.0]
    nanny = Nanny(table(netsend=10_000), clock=lambda: clock[0],
                  sleeper=lambda s: clock.__setitem__(0, clock[0] + s))
    for _ in range(1000):
        nanny.charge("netsend", 1064)
    rate = 1000 * 1064 / clock[0]
    assert rate == pytest.approx(10_000, rel=0.01)


def test_nanny_items_and_ports() -> None:
    nanny = Nanny(table(outsockets=2))
    nanny.add_item("outsockets")
    nanny.add_item("outsockets")
    with pytest.raises(ResourceExhaustedError):
        nanny.add_item("outsockets")
    nanny.remove_item("outsockets")
    nanny.add_item("outsockets")
    nanny.check_port("connport", 63100)
    with pytest.raises(ResourceForbiddenError):
        nanny.check_port("messport", 80)


def test_cpu_throttle_long_run_share() -> None:
    throttle = CpuThrottle(share=0.25)
    now = cpu = 0.0
    throttle.sample(now, cpu)
    for _ in range(2000):  # a program that burns 100 % whenever it runs
        now += 0.05
        cpu += 0.05
        pause = throttle.sample(now, cpu)
        now += pause
    assert cpu / now == pytest.approx(0.25, abs=0.01)


def test_cpu_throttle_idle_program_is_never_stopped() -> None:
    throttle = CpuThrottle(share=0.1)
    assert all(throttle.sample(t * 0.1, 0.0) == 0 for t in range(100))


def test_check_quantities_and_log_ring() -> None:
    limits = table(memory=100, diskused=200)
    assert check_quantities(limits, rss=50, disk=None) is None
    assert "memory" in (check_quantities(limits, rss=101, disk=None) or "")
    assert "diskused" in (check_quantities(limits, rss=1, disk=201) or "")
    ring = LogRing(keep=10)
    ring.add(b"0123456789abc")
    ring.add(b"de")
    assert ring.snapshot() == b"56789abcde" and ring.total == 15


def test_network_charges_go_to_net_or_loop_by_peer() -> None:
    from sandbox.vessel.vesselnet import VesselNet

    nanny = Nanny(table(netsend=1e9, netrecv=1e9))
    net = VesselNet(nanny, "127.0.0.1")
    net.charge("203.0.113.9", 1064, 64)  # a remote peer (no traffic: accounting only)
    net.charge("127.0.0.1", 500, 564)
    totals = nanny.totals()
    assert (totals["netsend"], totals["netrecv"]) == (1064, 64)
    assert (totals["loopsend"], totals["looprecv"]) == (500, 564)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=40),
    st.builds(lambda k, v: f"resource {k} {v}", st.sampled_from([*sandbox.KINDS, "gpu"]),
              st.one_of(st.floats(allow_nan=True), st.integers(-5, 10**20), st.text(max_size=5))),
), max_size=30).map("\n".join))
def test_resource_parser_only_raises_parse_errors(text: str) -> None:
    try:
        table_ = parse_resources(text)
    except ResourceParseError:
        return
    assert parse_resources(table_.to_text()) == table_


def test_a_persisted_log_keeps_its_total_and_run_name() -> None:
    ring = LogRing(keep=4)
    ring.add(b"hello world")
    back = decode_log(encode_log(ring), keep=4)
    assert (back.snapshot(), back.total, back.run) == (b"orld", 11, ring.run)
    assert LogRing().run != LogRing().run  # every run gets its own name
    old = decode_log(b"seattle-log-v1 11\norld", keep=4)  # written before run names
    assert (old.snapshot(), old.total, old.run) == (b"orld", 11, "")
    odd = decode_log(b"seattle-log-v1 11 r\x1b[2J\nx", keep=4)  # a header that is not ours
    assert odd.run == "" and odd.total == len(odd.snapshot())
