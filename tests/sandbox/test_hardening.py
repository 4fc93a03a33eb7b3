"""Each OS layer of ``sandbox.process.hardening`` on its own, in a real ``python -I -S`` child.

No language sandbox is involved: the child runs plain Python after hardening, so every
refusal below comes from the kernel (rlimits, uid, Landlock, seccomp).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sandbox.process import hardening
from sandbox.process.hardening import HardeningError, HardeningPlan, ProtectionReport
from tests.support.requires import requires

SANDBOX_DIR = Path(hardening.__file__).resolve().parents[1]
"""The ``sandbox`` package directory (the child stubs the package and imports from here)."""
SUPPORT = hardening.detect_support()
ROOT = bool(SUPPORT["root"])
LANDLOCK_ABI = int(SUPPORT["landlock_abi"])

needs_seccomp = requires(bool(SUPPORT["seccomp"]), "no seccomp (kernel/pyseccomp)")
needs_landlock = requires(LANDLOCK_ABI >= 1, "kernel offers no Landlock")
needs_landlock_net = requires(LANDLOCK_ABI >= 4, f"Landlock ABI {LANDLOCK_ABI} < 4 has no TCP port rules")
needs_root = requires(ROOT, "switching uid needs root")

_uids = itertools.count(61000 + (os.getpid() % 400) * 10)

# Runs in the child. It loads sandbox.errors/hardening under a stub ``sandbox`` package so
# the package __init__ (which pulls in the trio supervisor) is not executed, then proves
# trio stays unimported. Everything the probe needs is imported before hardening: after the
# uid drop and Landlock, the interpreter's stdlib may no longer be readable.
PRELUDE = r"""
import sys, json
sys.path[:] = json.loads(sys.argv[1])
import ctypes, dataclasses, errno, os, resource, signal, socket, subprocess, threading, types
stub = types.ModuleType("sandbox"); stub.__path__ = [sys.argv[3]]; sys.modules["sandbox"] = stub
from sandbox.process import hardening as h
assert "trio" not in sys.modules
cfg = json.loads(sys.argv[2])
raw_plan = cfg["plan"]
plan = h.HardeningPlan(**{**raw_plan, "read_paths": tuple(raw_plan["read_paths"]),
    "tcp_bind_ports": frozenset(raw_plan["tcp_bind_ports"]),
    "allow_socket_families": frozenset(raw_plan["allow_socket_families"])})
libc = ctypes.CDLL(None, use_errno=True)
out = {"reports": []}

def attempt(fn, *args):
    try:
        fn(*args)
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    except Exception as exc:
        return type(exc).__name__
    return "ok"

def raw(number, *args):
    if libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args]) == -1:
        raise OSError(ctypes.get_errno(), "syscall")

def write(path, data=b"x"):
    with open(path, "wb") as f:
        f.write(data)

def run_threads(n):
    gate = threading.Event()
    threads = [threading.Thread(target=gate.wait) for _ in range(n)]
    started = 0
    try:
        for t in threads:
            t.start()
            started += 1
    except RuntimeError:
        pass
    gate.set()
    for t in threads[:started]:
        t.join()
    return started

for name in cfg["layers"]:
    rep = h.set_no_new_privs() if name == "set_no_new_privs" else getattr(h, name)(plan)
    out["reports"].append({"level": rep.level(), "notes": list(rep.notes)})
"""
EPILOGUE = "\nsys.stdout.write(json.dumps(out))\n"


@pytest.fixture
def vessel_dir() -> Iterator[Path]:
    """A vessel dir under /tmp (tmp_path's parents are 0700 root, unreachable by a vessel uid)."""
    path = Path(tempfile.mkdtemp(prefix="hardening-vessel-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def child_sys_path() -> list[str]:
    paths = [p for p in sys.path if os.path.isabs(p) and os.path.isdir(p)]
    return [str(SANDBOX_DIR.parent), *paths]


def make_plan(vessel: Path, **overrides: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "vessel_dir": str(vessel),
        "read_paths": [*child_sys_path(), "/usr/lib", "/lib", "/lib64", "/etc/hosts"],
        "memory_bytes": 64 << 20,
        "disk_bytes": 1 << 20,
        "max_open_files": 64,
        "max_threads": 8,
        "cpu_seconds_backstop": None,
        "uid": None,
        "tcp_bind_ports": [],
        "allow_socket_families": [socket.AF_INET, socket.AF_INET6],
    }
    plan.update(overrides)
    return plan


def run_child(layers: list[str], plan: dict[str, Any], probe: str, *, check: bool = True
              ) -> dict[str, Any]:
    """Harden a fresh child with ``layers`` (function names), run ``probe``; return ``out``."""
    cfg = {"layers": layers, "plan": plan}
    script = PRELUDE + probe + EPILOGUE
    argv = [sys.executable, "-I", "-S", "-c", script,
            json.dumps(child_sys_path()), json.dumps(cfg), str(SANDBOX_DIR)]
    proc = subprocess.run(argv, capture_output=True, timeout=30, env={}, cwd="/", check=False)
    if not check:
        return {"returncode": proc.returncode, "stderr": proc.stderr.decode()}
    assert proc.returncode == 0, proc.stderr.decode()
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- pure, in-process -------------------------------------------------------------------------


def test_plan_rejects_bad_values(vessel_dir: Path) -> None:
    good = HardeningPlan(**{**make_plan(vessel_dir), "read_paths": (), "tcp_bind_ports":
                            frozenset(), "allow_socket_families": frozenset()})
    for bad in ({"vessel_dir": "relative"}, {"uid": 0}, {"max_open_files": 0},
                {"tcp_bind_ports": frozenset({70000})}, {"read_paths": ("rel",)}):
        with pytest.raises(HardeningError):
            replace(good, **bad)


def test_report_level_and_merge() -> None:
    assert ProtectionReport().level() == "none"
    full = ProtectionReport(True, True, True, True, True, True, ())
    assert full.level() == "rlimits+uid+nnp+seccomp+landlock(fs,net)"
    merged = ProtectionReport(rlimits=True, notes=("a",)).merge(
        ProtectionReport(landlock_fs=True, notes=("b",)))
    assert merged.level() == "rlimits+landlock(fs)"
    assert merged.notes == ("a", "b")


def test_detect_support_shape() -> None:
    assert set(SUPPORT) >= {"landlock_abi", "seccomp", "root", "cgroup_v1", "cgroup_v2"}
    assert isinstance(SUPPORT["landlock_abi"], int)
    assert all(isinstance(v, bool) for k, v in SUPPORT.items() if k != "landlock_abi")


# --- rlimits alone ----------------------------------------------------------------------------


def test_rlimits_fsize_nofile_core(vessel_dir: Path) -> None:
    plan = make_plan(vessel_dir, disk_bytes=4096, max_open_files=16, cpu_seconds_backstop=30)
    probe = f"""
target = {str(vessel_dir / "big")!r}
out["at_limit"] = attempt(write, target, b"a" * 4096)
out["beyond"] = attempt(write, target, b"a" * 4097)
fds = []
out["nofile"] = attempt(lambda: [fds.append(os.open("/dev/null", os.O_RDONLY)) for _ in range(64)])
out["opened"] = len(fds)
out["core"] = resource.getrlimit(resource.RLIMIT_CORE)
out["cpu"] = resource.getrlimit(resource.RLIMIT_CPU)
"""
    out = run_child(["apply_rlimits"], plan, probe)
    assert out["reports"][0]["level"] == "rlimits"
    assert (out["at_limit"], out["beyond"]) == ("ok", "EFBIG")
    assert out["nofile"] == "EMFILE" and out["opened"] < 16
    assert out["core"] == [0, 0] and out["cpu"] == [30, 35]


def test_rlimit_cpu_backstop_kills(vessel_dir: Path) -> None:
    plan = make_plan(vessel_dir, cpu_seconds_backstop=1)
    result = run_child(["apply_rlimits"], plan, "while True: pass\n", check=False)
    assert result["returncode"] == -24  # SIGXCPU at the soft limit


# --- seccomp alone ----------------------------------------------------------------------------

SECCOMP_PROBE = """
out["mode"] = libc.prctl(21, 0, 0, 0, 0)
out["fork"] = attempt(os.fork)
out["execv"] = attempt(os.execv, "/bin/true", ["true"])
out["subprocess"] = attempt(subprocess.run, ["/bin/true"])
for name in ("AF_UNIX", "AF_NETLINK", "AF_PACKET", "AF_INET", "AF_INET6"):
    out[name] = attempt(lambda f: socket.socket(getattr(socket, f)).close(), name)
out["socketpair"] = attempt(socket.socketpair)
out["symlink"] = attempt(os.symlink, "/etc/passwd", "/tmp/never-made-link")
out["link"] = attempt(os.link, "/etc/passwd", "/tmp/never-made-link")
out["mkfifo"] = attempt(os.mkfifo, "/tmp/never-made-fifo")
out["ptrace"] = attempt(raw, 101, 0, 0, 0, 0)           # PTRACE_TRACEME
out["unshare"] = attempt(raw, 272, 0x10000000)           # CLONE_NEWUSER
out["io_uring"] = attempt(raw, 425, 1, 0)
out["threads"] = run_threads(5)
"""


@needs_seccomp
def test_seccomp_alone_blocks_process_creation_sockets_links(vessel_dir: Path) -> None:
    out = run_child(["apply_seccomp"], make_plan(vessel_dir), SECCOMP_PROBE)
    assert out["reports"][0]["level"] == "nnp+seccomp"
    assert out["mode"] == 2
    denied = ("fork", "execv", "subprocess", "AF_UNIX", "AF_NETLINK", "AF_PACKET", "socketpair",
              "symlink", "link", "mkfifo", "ptrace", "unshare", "io_uring")
    assert {k: out[k] for k in denied} == dict.fromkeys(denied, "EPERM")
    assert out["AF_INET"] == "ok"
    assert out["AF_INET6"] in ("ok", "EAFNOSUPPORT")  # never refused by the filter
    assert out["threads"] == 5


def test_seccomp_missing_library_is_a_note(vessel_dir: Path) -> None:
    probe = """
sys.modules["pyseccomp"] = None  # makes ``import pyseccomp`` raise ImportError
rep = h.apply_seccomp(plan)
out["level"] = rep.level(); out["notes"] = list(rep.notes)
"""
    out = run_child([], make_plan(vessel_dir), probe)
    assert out["level"] == "none"
    assert any("pyseccomp" in note for note in out["notes"])


# --- Landlock alone ---------------------------------------------------------------------------


@needs_landlock
def test_landlock_alone_confines_filesystem(vessel_dir: Path) -> None:
    outside = Path(tempfile.mkdtemp(prefix="hardening-outside-", dir="/tmp"))
    try:
        probe = f"""
out["passwd"] = attempt(lambda: open("/etc/passwd").read())
out["hosts"] = attempt(lambda: open("/etc/hosts").read())
out["stdlib"] = attempt(lambda: open(os.__file__).read())
out["import"] = attempt(__import__, "colorsys")
out["outside"] = attempt(write, {str(outside / "f")!r})
out["inside"] = attempt(write, {str(vessel_dir / "f")!r})
out["listdir"] = attempt(os.listdir, {str(vessel_dir)!r})
out["mkdir"] = attempt(os.mkdir, {str(vessel_dir / "sub")!r})
out["remove"] = attempt(os.remove, {str(vessel_dir / "f")!r})
"""
        out = run_child(["set_no_new_privs", "apply_landlock"], make_plan(vessel_dir), probe)
    finally:
        shutil.rmtree(outside)
    fs_level = "landlock(fs,net)" if LANDLOCK_ABI >= 4 else "landlock(fs)"
    assert out["reports"][1]["level"] == fs_level
    assert out["passwd"] == "EACCES" and out["outside"] == "EACCES"  # root, so not DAC
    assert out["mkdir"] == "EACCES"  # the vessel dir is flat
    for key in ("hosts", "stdlib", "import", "inside", "listdir", "remove"):
        assert out[key] == "ok", key


@needs_landlock_net
def test_landlock_alone_limits_tcp_bind_ports(vessel_dir: Path) -> None:
    allowed, other = free_port(), free_port()
    probe = f"""
srv = socket.socket()
out["allowed"] = attempt(srv.bind, ("127.0.0.1", {allowed}))
srv.listen()
out["connect"] = attempt(socket.create_connection, ("127.0.0.1", {allowed}))
out["other"] = attempt(socket.socket().bind, ("127.0.0.1", {other}))
out["ephemeral"] = attempt(socket.socket().bind, ("127.0.0.1", 0))
"""
    plan = make_plan(vessel_dir, tcp_bind_ports=[allowed])
    out = run_child(["set_no_new_privs", "apply_landlock"], plan, probe)
    assert (out["allowed"], out["connect"]) == ("ok", "ok")
    assert (out["other"], out["ephemeral"]) == ("EACCES", "EACCES")


@needs_landlock
def test_landlock_refuses_when_threads_run(vessel_dir: Path) -> None:
    probe = """
gate = threading.Event(); t = threading.Thread(target=gate.wait); t.start()
out["error"] = attempt(h.apply_landlock, plan)
gate.set(); t.join()
"""
    out = run_child([], make_plan(vessel_dir), probe)
    assert out["error"] == "HardeningError"


# --- uid drop alone ---------------------------------------------------------------------------


@needs_root
def test_uid_drop_alone(vessel_dir: Path) -> None:
    uid = next(_uids)
    (vessel_dir / "existing").write_bytes(b"old")
    secret_dir = Path(tempfile.mkdtemp(prefix="hardening-secret-", dir="/tmp"))
    secret_dir.chmod(0o755)
    secret = secret_dir / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    probe = f"""
out["ids"] = [os.getresuid(), os.getresgid(), os.getgroups()]
out["secret"] = attempt(lambda: open({str(secret)!r}).read())
out["existing"] = attempt(write, {str(vessel_dir / "existing")!r})
out["new"] = attempt(write, {str(vessel_dir / "new")!r})
out["setuid0"] = attempt(os.setuid, 0)
out["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)
out["five_threads"] = run_threads(5)
out["many_threads"] = run_threads(40)
"""
    try:
        out = run_child(["apply_rlimits", "drop_privileges"], make_plan(
            vessel_dir, uid=uid, max_threads=5), probe)
    finally:
        shutil.rmtree(secret_dir)
    assert out["reports"][1]["level"] == "uid"
    assert out["ids"] == [[uid] * 3, [uid] * 3, []]
    assert out["secret"] == "EACCES" and out["setuid0"] == "EPERM"
    assert out["existing"] == "ok" and out["new"] == "ok"
    assert out["nproc"] == [7, 7]  # max_threads + slack
    assert out["five_threads"] == 5
    assert out["many_threads"] < 7  # NPROC stops thread creation


def test_uid_none_is_a_note(vessel_dir: Path) -> None:
    out = run_child(["drop_privileges"], make_plan(vessel_dir), "")
    assert out["reports"][0]["level"] == "none"
    assert out["reports"][0]["notes"]


# --- everything together ----------------------------------------------------------------------


@needs_root
@needs_seccomp
@needs_landlock
def test_apply_hardening_all_layers(vessel_dir: Path) -> None:
    uid = next(_uids)
    probe = f"""
rep = h.apply_hardening(plan)
out["level"] = rep.level(); out["notes"] = list(rep.notes)
out["fork"] = attempt(os.fork)
out["passwd"] = attempt(lambda: open("/etc/passwd").read())
out["inside"] = attempt(write, {str(vessel_dir / "f")!r})
out["outside"] = attempt(write, "/tmp/hardening-never-written")
out["threads"] = run_threads(5)
out["again"] = h.drop_privileges(dataclasses.replace(plan, uid={uid + 1})).notes
limit = h.set_address_space_limit(64 << 20)
out["as_ok"] = resource.getrlimit(resource.RLIMIT_AS)[0] == limit
out["big_alloc"] = attempt(bytearray, 256 << 20)
"""
    out = run_child([], make_plan(vessel_dir, uid=uid), probe)
    expected = "rlimits+uid+nnp+seccomp+landlock(fs,net)" if LANDLOCK_ABI >= 4 else (
        "rlimits+uid+nnp+seccomp+landlock(fs)")
    assert out["level"] == expected, out["notes"]
    assert (out["fork"], out["passwd"], out["outside"]) == ("EPERM", "EACCES", "EACCES")
    assert out["inside"] == "ok" and out["threads"] == 5
    assert any("not root" in note for note in out["again"])
    assert out["as_ok"] and out["big_alloc"] == "MemoryError"
