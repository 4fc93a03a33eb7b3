"""Pure checks of the Repy V2 pieces: SafeDict, charging rules, the CPU stop window, port."""

from __future__ import annotations

import pytest

from sandbox.lang.port import port_source
from sandbox.lang.safedict import SafeDict, namespace_of, view_of
from sandbox.process.limits import CpuThrottle
from sandbox.vessel.nanny import Nanny
from sandbox.vessel.vesselfiles import blocks_touched
from sandbox.vessel.vesselnet import valid_ip
from tests.support.vessels import table


def test_safedict_refuses_keys_that_reach_the_hooks() -> None:
    d = SafeDict({"a": 1})
    for key in ("_getattr_", "__builtins__", "a__b", "_"):
        with pytest.raises(ValueError):
            d[key] = 1
        with pytest.raises(ValueError):
            _ = key in d
    with pytest.raises(TypeError):
        d[1] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        d.update({1: 2})
    assert "a" in d and d.keys() == ["a"]


def test_safedict_hides_the_sandboxs_own_entries() -> None:
    namespace = {"__builtins__": {}, "__name__": "vessel", "x": 1}
    view = view_of(namespace)
    assert view.keys() == ["x"] and len(view) == 1 and view.copy() == {"x": 1}
    view["y"] = 2
    assert namespace["y"] == 2 and namespace_of(view) is namespace
    view["self"] = view
    assert "SafeDict({...})" in repr(view)  # a self-reference does not recurse forever


def test_readat_charges_every_block_touched() -> None:
    assert blocks_touched(0, 1) == 4096
    assert blocks_touched(4090, 8) == 8192  # Seattle's readat(8, 4090)
    assert blocks_touched(1, 4098) == 8192
    assert blocks_touched(4096, 4096) == 4096
    assert blocks_touched(0, 0) == 0


def test_usage_is_the_level_left_by_the_last_charge() -> None:
    now = [0.0]
    nanny = Nanny(table(fileread=10_000), clock=lambda: now[0], sleeper=lambda s: None)
    nanny.charge("fileread", 4096)
    now[0] = 100.0
    usage = nanny.usage()
    assert usage["fileread"] == 4096  # not drained by reading
    assert isinstance(usage["filesopened"], int) and usage["messport"] == set()
    nanny.charge("fileread", 4096)
    assert nanny.usage()["fileread"] == 4096  # drained at the charge, then charged


def test_cpu_stops_come_in_seattle_sized_windows() -> None:
    throttle = CpuThrottle(share=0.1)
    stops = []
    now = cpu = 0.0
    throttle.sample(now, cpu)
    for _ in range(200):  # a busy program sampled every 50 ms
        now += 0.05
        cpu += 0.05
        pause = throttle.sample(now, cpu)
        if pause:
            stops.append(pause)
            now += pause
    assert stops and all(0.85 <= s <= 0.95 for s in stops[1:]), stops[:5]
    assert cpu / now == pytest.approx(0.1, abs=0.01)


def test_valid_destination_ips() -> None:
    assert valid_ip("127.0.0.1") and valid_ip("1.2.3.4") and valid_ip("223.255.255.255")
    for bad in ("0.1.2.3", "224.0.0.1", "255.255.255.255", "1.2.3", "1.2.3.256", "a.b.c.d",
                "1.2.3.4 ", "\u0661.2.3.4"):
        assert not valid_ip(bad), bad


def test_port_converts_python2_repy() -> None:
    source = (
        'include time.repy\n'
        'def _helper(x):\n'
        '  if type(x) is not str:\n'
        '    raise RepyArgumentError, "bad"\n'
        '  print "x", x\n'
        '  return _context["mycontext"].has_key(x)\n'
        'for i in xrange(3):\n'
        '  try:\n'
        '    _helper(u"a")\n'
        '  except Exception, e:\n'
        '    pass\n'
    )
    result = port_source(source)
    assert result.clean, result.problems
    text = result.source
    assert 'dy_import_module_symbols("time.repy")' in text
    assert "def helper_(x):" in text and "helper_(" in text.split("try:")[1]
    assert "if not isinstance(x, str):" in text
    assert 'raise RepyArgumentError("bad")' in text and 'print("x", x)' in text
    assert 'x in usercontext["mycontext"]' in text and "range(3)" in text
    assert "except Exception as e:" in text and 'helper_("a")' in text
    assert any("raise X, msg" in c for c in result.changes)


def test_port_reports_what_it_cannot_convert() -> None:
    result = port_source("import os\nclass A:\n  def __len__(self):\n    return type(self)\n"
                         "settimer(1, f, [])\ndata = f.readat(None, 0)\n")
    problems = "\n".join(result.problems)
    assert not result.clean
    for needle in ("Line 1: import", "Line 3: __len__", "Line 4: type()", "Line 5: settimer()"):
        assert needle in problems, problems
    assert any("Line 6" in c and "bytes" in c for c in result.changes)


def test_port_never_raises_on_garbage() -> None:
    for source in ("def (:\n", "\x00\x01", "x = `", "if True:\n\tpass\n        pass\n"):
        result = port_source(source)
        assert result.problems


def test_a_late_cpu_sample_does_not_make_a_longer_stop() -> None:
    throttle = CpuThrottle(share=0.1)
    throttle.sample(0.0, 0.0)
    assert throttle.sample(0.3, 0.3) == pytest.approx(0.9)  # debt 0.27 s: stop capped at 0.9
    # the rest of the debt is kept: the next busy sample stops again at once
    assert throttle.sample(1.25, 0.35) > 0
