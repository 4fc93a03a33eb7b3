"""OS hardening applied inside a freshly started vessel process, before untrusted code runs.

Layers, in the order ``apply_hardening`` applies them (docs/isolation.md, The layers):

1. rlimits: CORE 0, FSIZE = disk limit (SIGXFSZ ignored, so writes fail with EFBIG),
   NOFILE, CPU backstop (SIGXCPU at the soft limit, SIGKILL 5 s later).
2. uid: chown the (flat) vessel dir to the vessel uid, drop supplementary groups, switch
   gid/uid, then RLIMIT_NPROC (not enforced for root, so only after the drop).
3. no_new_privs via prctl.
4. Landlock (raw syscalls 444-446): read+execute on ``read_paths``, file access on the
   vessel dir, and with ABI >= 4 TCP bind limited to ``tcp_bind_ports``.
5. seccomp (pyseccomp, imported lazily): deny process creation, exec, tracing, namespace,
   mount, kernel-module, link/symlink/mknod syscalls and unwanted socket families.

Invariants: a layer the kernel or environment lacks is reported in ``ProtectionReport.notes``
and never raises; a layer that is available but fails raises ``HardeningError``.
This module never imports trio: it runs in the bare vessel child (``python -I -S``).
RLIMIT_AS is left to the caller (``set_address_space_limit``) because it depends on the
address space used after the vessel runtime's imports. Landlock and the uid drop make
later imports from unreadable places fail, so import everything the runtime needs first.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import resource
import signal
import socket
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any

from sandbox.errors import SandboxError
from sandbox.resources import ResourceTable

log = logging.getLogger(__name__)

DEFAULT_SOCKET_FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6})

__all__ = [
    "DEFAULT_SOCKET_FAMILIES",
    "HardeningError",
    "HardeningPlan",
    "ProtectionReport",
    "apply_hardening",
    "apply_landlock",
    "apply_rlimits",
    "apply_seccomp",
    "default_read_paths",
    "detect_support",
    "disk_bytes_for",
    "drop_privileges",
    "forget_status_fd",
    "landlock_abi",
    "open_files_for",
    "reset_rlimits",
    "set_address_space_limit",
    "set_no_new_privs",
    "warm_up",
]


class HardeningError(SandboxError):
    """Raised when an OS protection layer that is available fails to apply."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HardeningPlan:
    """What the vessel process may touch; built by the broker, applied in the child."""

    vessel_dir: str
    """Absolute path of the flat vessel directory: the only writable place."""
    read_paths: tuple[str, ...]
    """Files and directories needed read-only (stdlib, site-packages, /usr/lib, /etc/hosts...)."""
    memory_bytes: int
    """Vessel memory limit; the caller passes it to ``set_address_space_limit`` after imports."""
    disk_bytes: int
    """``diskused`` limit, enforced per file as RLIMIT_FSIZE (the nanny tracks the total)."""
    max_open_files: int
    """RLIMIT_NOFILE, soft and hard."""
    max_threads: int
    """Threads the vessel may run; RLIMIT_NPROC = this + slack once a dedicated uid is used."""
    cpu_seconds_backstop: int | None
    """RLIMIT_CPU soft limit (hard = soft + 5); None leaves CPU to the monitor."""
    uid: int | None
    """Dedicated uid (and gid) to switch to when running as root; None stays as is."""
    tcp_bind_ports: frozenset[int]
    """Landlock ABI >= 4: the only local TCP ports that may be bound (0 = ephemeral)."""
    allow_socket_families: frozenset[int]
    """Socket address families seccomp lets through, e.g. {AF_INET, AF_INET6}."""

    def __post_init__(self) -> None:
        problems = [msg for bad, msg in self._checks() if bad]
        if problems:
            raise HardeningError("invalid hardening plan: " + "; ".join(problems))

    def _checks(self) -> list[tuple[bool, str]]:
        return [
            (not os.path.isabs(self.vessel_dir), "vessel_dir must be absolute"),
            (not all(os.path.isabs(p) for p in self.read_paths), "read_paths must be absolute"),
            (self.memory_bytes <= 0, "memory_bytes must be positive"),
            (self.disk_bytes < 0, "disk_bytes must not be negative"),
            (self.max_open_files <= 0, "max_open_files must be positive"),
            (self.max_threads <= 0, "max_threads must be positive"),
            (self.cpu_seconds_backstop is not None and self.cpu_seconds_backstop <= 0,
             "cpu_seconds_backstop must be positive"),
            (self.uid is not None and self.uid <= 0, "uid must be an unprivileged uid"),
            (not all(0 <= p <= 0xFFFF for p in self.tcp_bind_ports), "bad TCP port"),
        ]


@dataclass(frozen=True, slots=True)
class ProtectionReport:
    """Which layers are active in this process, and why the others are not."""

    rlimits: bool = False
    uid_dropped: bool = False
    seccomp: bool = False
    landlock_fs: bool = False
    landlock_net: bool = False
    no_new_privs: bool = False
    notes: tuple[str, ...] = ()

    def level(self) -> str:
        """Short summary such as ``rlimits+uid+nnp+seccomp+landlock(fs,net)``, or ``none``."""
        parts = [name for flag, name in ((self.rlimits, "rlimits"), (self.uid_dropped, "uid"),
                                         (self.no_new_privs, "nnp"), (self.seccomp, "seccomp"))
                 if flag]
        landlock = [n for flag, n in ((self.landlock_fs, "fs"), (self.landlock_net, "net")) if flag]
        if landlock:
            parts.append(f"landlock({','.join(landlock)})")
        return "+".join(parts) or "none"

    def merge(self, other: ProtectionReport) -> ProtectionReport:
        """Combine two partial reports: a layer is active if either says so; notes concatenate."""
        flags = {f.name: getattr(self, f.name) or getattr(other, f.name)
                 for f in fields(self) if f.name != "notes"}
        return ProtectionReport(**flags, notes=self.notes + other.notes)


# --- libc helpers -----------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int

PR_SET_PDEATHSIG = 1
PR_GET_SECCOMP = 21
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39


def _prctl(option: int, arg: int = 0) -> int:
    """Call prctl(2); raise OSError on failure."""
    ulong = ctypes.c_ulong
    res = _libc.prctl(ctypes.c_int(option), ulong(arg), ulong(0), ulong(0), ulong(0))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(res)


def _syscall(number: int, *args: object) -> int:
    """Call syscall(2) with long-sized integer arguments; raise OSError on failure."""
    cargs = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    res = _libc.syscall(ctypes.c_long(number), *cargs)
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(res)


_status_fd: int | None = None


def _read_status() -> dict[str, str]:
    """/proc/self/status as a dict, through an fd kept open so Landlock cannot hide it."""
    global _status_fd
    try:
        if _status_fd is None:
            _status_fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
        text = os.pread(_status_fd, 16384, 0).decode("ascii", "replace")
    except OSError as exc:
        raise HardeningError(f"cannot read /proc/self/status: {exc}") from exc
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def forget_status_fd() -> None:
    """Drop the cached /proc/self/status descriptor: in a forked child it is the parent's."""
    global _status_fd
    _status_fd = None


def warm_up() -> None:
    """Do the slow, process-independent set-up now (a fork server, before it forks)."""
    _import_pyseccomp()


def _require_single_thread(layer: str) -> None:
    threads = int(_read_status().get("Threads", "1"))
    if threads != 1:
        raise HardeningError(f"{layer} must be applied while single-threaded ({threads} threads)")


def set_address_space_limit(extra_bytes: int) -> int:
    """Set RLIMIT_AS to the current VmSize plus ``extra_bytes``; return the limit set.

    Call it after the runtime's imports and before untrusted code. Every thread reserves
    an 8 MiB stack, so ``extra_bytes`` must cover the vessel's threads too.
    """
    vm_kib = int(_read_status()["VmSize"].split()[0])
    limit = vm_kib * 1024 + extra_bytes
    _set_rlimit(resource.RLIMIT_AS, limit, limit)
    return resource.getrlimit(resource.RLIMIT_AS)[0]


# --- layer 1: rlimits -------------------------------------------------------------------------

_CPU_HARD_GRACE = 5
_NPROC_SLACK = 2  # the main thread plus one spare


def _set_rlimit(which: int, soft: int, hard: int) -> None:
    """Lower a limit; never try to raise the current hard limit (non-root cannot)."""
    _, cur_hard = resource.getrlimit(which)
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
    try:
        resource.setrlimit(which, (min(soft, hard), hard))
    except (OSError, ValueError) as exc:
        raise HardeningError(f"setrlimit({which}, {soft}, {hard}) failed: {exc}") from exc


def apply_rlimits(plan: HardeningPlan) -> ProtectionReport:
    """CORE=0, FSIZE=disk (SIGXFSZ ignored), NOFILE, CPU backstop. Must run in the main thread."""
    try:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    except ValueError as exc:
        raise HardeningError(f"cannot ignore SIGXFSZ: {exc}") from exc
    _set_rlimit(resource.RLIMIT_CORE, 0, 0)
    _set_rlimit(resource.RLIMIT_FSIZE, plan.disk_bytes, plan.disk_bytes)
    _set_rlimit(resource.RLIMIT_NOFILE, plan.max_open_files, plan.max_open_files)
    cpu = plan.cpu_seconds_backstop
    if cpu is not None:
        _set_rlimit(resource.RLIMIT_CPU, cpu, cpu + _CPU_HARD_GRACE)
    return ProtectionReport(rlimits=True)


def open_files_for(table: ResourceTable) -> int:
    """RLIMIT_NOFILE for a vessel: its files and sockets plus the interpreter's own."""
    return int(table["filesopened"] + table["insockets"] + table["outsockets"]) + 64


def disk_bytes_for(table: ResourceTable) -> int:
    """RLIMIT_FSIZE for a vessel: no file larger than its disk (at least one page)."""
    return max(int(table["diskused"]), 4096)


def reset_rlimits(pid: int, old: ResourceTable, new: ResourceTable) -> list[str]:
    """Move a running child's rlimits from ``old``'s to ``new``'s (``prlimit``); return the
    ones that could not move, with why. RLIMIT_AS moves by the memory difference (it was
    set to the child's size plus the limit); a limit never set (infinite) stays so. Moving
    the limits of a child of another uid, or raising a hard limit, needs CAP_SYS_RESOURCE:
    without it they keep their start values. A child already above a lowered limit keeps
    what it has; its next allocation, file growth or open fails."""
    plan = (
        ("RLIMIT_AS", resource.RLIMIT_AS, lambda cur: cur + int(new["memory"]) - int(old["memory"])),
        ("RLIMIT_FSIZE", resource.RLIMIT_FSIZE, lambda cur: disk_bytes_for(new)),
        ("RLIMIT_NOFILE", resource.RLIMIT_NOFILE, lambda cur: open_files_for(new)),
    )
    failed = []
    for name, which, limit_of in plan:
        try:
            soft, _ = resource.prlimit(pid, which)
            if soft != resource.RLIM_INFINITY:
                value = max(1, limit_of(soft))
                resource.prlimit(pid, which, (value, value))
        except (OSError, ValueError) as exc:
            failed.append(f"{name}: {exc}")
    return failed


# --- parent death ---------------------------------------------------------------------------


def die_with_parent(parent_pid: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent (thread) dies, in any state.

    SIGKILL reaches a SIGSTOPped or blocked process too, which a pipe-EOF watcher cannot.
    A uid/gid change clears the setting, so it is set again after the drop. If the parent
    is already gone (we were re-parented before the call), die now.
    """
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


# --- layer 2: uid -----------------------------------------------------------------------------


def _chown_vessel_dir(path: str, uid: int) -> None:
    """Give the flat vessel dir and its direct entries to ``uid`` (symlinks not followed)."""
    os.chown(path, uid, uid)
    os.chmod(path, 0o700)
    with os.scandir(path) as entries:
        for entry in entries:
            os.chown(entry.path, uid, uid, follow_symlinks=False)


def _switch_ids(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid) or os.getgroups():
        raise HardeningError(f"uid/gid switch to {uid} did not take effect")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise HardeningError("could regain root after dropping privileges")


def drop_privileges(plan: HardeningPlan) -> ProtectionReport:
    """Switch to ``plan.uid`` when root, then set RLIMIT_NPROC."""
    if plan.uid is None:
        return ProtectionReport(notes=("uid: no dedicated uid configured; NPROC not set",))
    euid = os.geteuid()
    if euid not in (0, plan.uid):
        note = f"uid: not root (euid {euid}), cannot switch to {plan.uid}"
        return ProtectionReport(notes=(note,))
    # The child works through descriptors and its cwd, so the vessel dir need not be
    # reachable by path for the new uid (its parents may be 0700, e.g. under /root).
    vessel_fd = os.open(plan.vessel_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if euid == 0:
            _chown_vessel_dir(plan.vessel_dir, plan.uid)
            _switch_ids(plan.uid)
        limit = plan.max_threads + _NPROC_SLACK
        _set_rlimit(resource.RLIMIT_NPROC, limit, limit)
        if not os.access(".", os.R_OK | os.W_OK | os.X_OK, dir_fd=vessel_fd):
            raise HardeningError(f"uid {plan.uid} cannot use vessel dir {plan.vessel_dir}")
    except OSError as exc:
        raise HardeningError(f"dropping privileges to uid {plan.uid} failed: {exc}") from exc
    finally:
        os.close(vessel_fd)
    return ProtectionReport(uid_dropped=True)


# --- layer 3: no_new_privs --------------------------------------------------------------------


def set_no_new_privs() -> ProtectionReport:
    """PR_SET_NO_NEW_PRIVS: execve can never grant privileges (setuid bits, file caps)."""
    try:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        active = _prctl(PR_GET_NO_NEW_PRIVS) == 1
    except OSError as exc:
        raise HardeningError(f"PR_SET_NO_NEW_PRIVS failed: {exc}") from exc
    if not active:
        raise HardeningError("no_new_privs did not stick")
    return ProtectionReport(no_new_privs=True)


# --- layer 4: Landlock ------------------------------------------------------------------------

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2

FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_FILE, FS_MAKE_REG, FS_TRUNCATE = 1 << 5, 1 << 8, 1 << 14
_FS_ABI1_ALL = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
_FS_BY_ABI = {1: _FS_ABI1_ALL, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}  # +REFER..
_NET_BIND_TCP = 1 << 0
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1

_READ_DIR_ACCESS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
_READ_FILE_ACCESS = FS_EXECUTE | FS_READ_FILE
_VESSEL_ACCESS = (FS_READ_FILE | FS_WRITE_FILE | FS_READ_DIR | FS_REMOVE_FILE | FS_MAKE_REG
                  | FS_TRUNCATE)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def _query_landlock_abi() -> int:
    """Landlock ABI version; raise OSError (ENOSYS, EOPNOTSUPP...) when unavailable."""
    return _syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)


def landlock_abi() -> int:
    """Landlock ABI version of the running kernel, 0 when Landlock is unavailable."""
    try:
        return _query_landlock_abi()
    except OSError:
        return 0


def _fs_handled(abi: int) -> int:
    return _FS_BY_ABI[max(v for v in _FS_BY_ABI if v <= abi)]


def _create_ruleset(abi: int) -> int:
    attr = _RulesetAttr(_fs_handled(abi), _NET_BIND_TCP if abi >= 4 else 0,
                        _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    return _syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.pointer(attr), size, 0)


def _open_path(path: str) -> int | None:
    """O_PATH fd for a Landlock rule, or None when ``path`` is missing or unreachable."""
    try:
        return os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        log.debug("landlock: read path %s does not exist, skipped", path)
    except PermissionError:
        log.warning("landlock: read path %s unreachable for uid %d, skipped", path, os.getuid())
    return None


def _add_path_rule(ruleset_fd: int, fd: int, dir_access: int, file_access: int) -> None:
    """Allow access beneath the open ``fd`` (file-only rights when it is not a directory)."""
    try:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        attr = _PathBeneathAttr(dir_access if is_dir else file_access, fd)
        _syscall(_SYS_LANDLOCK_ADD_RULE, ruleset_fd, _RULE_PATH_BENEATH, ctypes.pointer(attr), 0)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class RuleFds:
    """O_PATH descriptors for Landlock rules, opened while the paths are still reachable."""

    read: tuple[int, ...]
    vessel: int


def open_rule_fds(plan: HardeningPlan) -> RuleFds:
    """Open the rule paths now (before the uid drop hides root-only parents)."""
    read = tuple(fd for fd in map(_open_path, plan.read_paths) if fd is not None)
    vessel = os.open(plan.vessel_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return RuleFds(read, vessel)


def _add_rules(ruleset_fd: int, plan: HardeningPlan, abi: int, fds: RuleFds) -> None:
    handled = _fs_handled(abi)
    for fd in fds.read:
        _add_path_rule(ruleset_fd, fd, _READ_DIR_ACCESS, _READ_FILE_ACCESS & handled)
    vessel_fd = fds.vessel
    _add_path_rule(ruleset_fd, vessel_fd, _VESSEL_ACCESS & handled, 0)
    if abi >= 4:
        for port in sorted(plan.tcp_bind_ports):
            attr = _NetPortAttr(_NET_BIND_TCP, port)
            _syscall(_SYS_LANDLOCK_ADD_RULE, ruleset_fd, _RULE_NET_PORT, ctypes.pointer(attr), 0)


def apply_landlock(plan: HardeningPlan, fds: RuleFds | None = None) -> ProtectionReport:
    """Restrict the filesystem (and TCP bind ports on ABI >= 4) for this process.

    Needs no_new_privs (``set_no_new_privs``) unless still root, and a single thread,
    because Landlock applies to the calling thread only. ABI >= 6 also scopes signals
    and abstract unix sockets to the vessel's own domain.
    """
    try:
        abi = _query_landlock_abi()
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "?")
        return ProtectionReport(notes=(f"landlock: not offered by this kernel ({name})",))
    _require_single_thread("landlock")
    if fds is None:
        fds = open_rule_fds(plan)
    try:
        ruleset_fd = _create_ruleset(abi)
        try:
            _add_rules(ruleset_fd, plan, abi, fds)
            _syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset_fd, 0)
        finally:
            os.close(ruleset_fd)
    except OSError as exc:
        raise HardeningError(f"landlock (ABI {abi}) failed: {exc}") from exc
    notes = () if abi >= 4 else (f"landlock: ABI {abi} < 4, TCP bind ports not restricted",)
    return ProtectionReport(landlock_fs=True, landlock_net=abi >= 4, notes=notes)


# --- layer 5: seccomp -------------------------------------------------------------------------

_DENY_EPERM = (
    "execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "bpf", "perf_event_open",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key",
    "request_key", "personality", "kexec_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "symlink", "symlinkat", "link", "linkat", "mknod",
    "mknodat", "socketpair", "open_by_handle_at",
)
_CLONE_THREAD = 0x00010000
_SOCKET_FAMILY_SPAN = 64  # above AF_MAX (46 on 6.x); the kernel refuses larger families
_U32 = 0xFFFFFFFF


@functools.cache
def _import_pyseccomp() -> ModuleType | Exception:
    """Import pyseccomp once; its import runs ldconfig, so do it before any other layer."""
    try:
        import pyseccomp
    except (ImportError, RuntimeError, OSError) as exc:
        return exc
    module: ModuleType = pyseccomp
    return module


def _seccomp_kernel() -> bool:
    try:
        _prctl(PR_GET_SECCOMP)
    except OSError:
        return False
    return True


def _add_rule(flt: Any, lib: ModuleType, action: int, name: str, *args: object) -> None:
    if lib.resolve_syscall(lib.Arch.NATIVE, name) == -1:
        log.debug("seccomp: syscall %s unknown to libseccomp, skipped", name)
        return
    flt.add_rule(action, name, *args)


def _build_filter(lib: ModuleType, families: frozenset[int]) -> Any:
    """Default ALLOW; EPERM for the deny list; thread-only clone; clone3 -> ENOSYS."""
    eperm = lib.ERRNO(errno.EPERM)
    flt = lib.SyscallFilter(lib.ALLOW)
    flt.set_attr(lib.Attr.CTL_TSYNC, 1)
    for name in _DENY_EPERM:
        _add_rule(flt, lib, eperm, name)
    # clone(flags, ...): flags is argument 0 on x86_64 and arm64 (not on s390).
    _add_rule(flt, lib, eperm, "clone", lib.Arg(0, lib.MASKED_EQ, _CLONE_THREAD, 0))
    _add_rule(flt, lib, lib.ERRNO(errno.ENOSYS), "clone3")  # glibc falls back to clone
    for family in range(_SOCKET_FAMILY_SPAN):
        if family not in families:
            _add_rule(flt, lib, eperm, "socket", lib.Arg(0, lib.MASKED_EQ, _U32, family))
    return flt


def apply_seccomp(plan: HardeningPlan) -> ProtectionReport:
    """Load the seccomp filter (see ``_DENY_EPERM``); sets no_new_privs itself too."""
    lib = _import_pyseccomp()
    if isinstance(lib, Exception):
        return ProtectionReport(notes=(f"seccomp: pyseccomp/libseccomp unavailable ({lib})",))
    if not _seccomp_kernel():
        return ProtectionReport(notes=("seccomp: not offered by this kernel",))
    try:
        _build_filter(lib, plan.allow_socket_families).load()
        mode = _prctl(PR_GET_SECCOMP)
    except OSError as exc:
        raise HardeningError(f"seccomp filter failed to load: {exc}") from exc
    if mode != 2:
        raise HardeningError(f"seccomp mode is {mode} after loading the filter")
    return ProtectionReport(seccomp=True, no_new_privs=True)


# --- composition ------------------------------------------------------------------------------


def apply_hardening(plan: HardeningPlan) -> ProtectionReport:
    """Apply every layer in order; return what is active. Call before untrusted code runs.

    Example (in the vessel child)::

        report = apply_hardening(plan)
        import_runtime()
        set_address_space_limit(plan.memory_bytes)
    """
    _import_pyseccomp()  # before the uid drop and Landlock hide site-packages
    _read_status()  # keeps one fd on /proc/self/status for set_address_space_limit
    _require_single_thread("hardening")
    fds = open_rule_fds(plan) if landlock_abi() > 0 else None
    report = apply_rlimits(plan).merge(drop_privileges(plan)).merge(set_no_new_privs())
    report = report.merge(apply_landlock(plan, fds)).merge(apply_seccomp(plan))
    log.info("vessel protection level: %s", report.level())
    for note in report.notes:
        log.info("missing layer: %s", note)
    return report


def _cgroup_mounts() -> set[str]:
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            return {line.split()[2] for line in mounts if len(line.split()) > 2}
    except OSError:
        return set()


def detect_support() -> dict[str, bool | int]:
    """What this machine offers: Landlock ABI (0 = none), seccomp, root, cgroup v1/v2 mounts."""
    lib_ok = not isinstance(_import_pyseccomp(), Exception)
    kernel_ok = _seccomp_kernel()
    mounts = _cgroup_mounts()
    return {
        "landlock_abi": landlock_abi(),
        "seccomp": lib_ok and kernel_ok,
        "seccomp_kernel": kernel_ok,
        "seccomp_library": lib_ok,
        "root": os.geteuid() == 0,
        "cgroup_v1": "cgroup" in mounts,
        "cgroup_v2": "cgroup2" in mounts,
    }


_SYSTEM_READ_PATHS = (
    "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/hosts",
    "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf", "/proc/self",
)


def default_read_paths(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Existing absolute ``sys.path`` entries, shared libraries, resolver files, ``extra``."""
    candidates = [*(p for p in sys.path if os.path.isabs(p)), *_SYSTEM_READ_PATHS, *extra]
    return tuple(dict.fromkeys(p for p in candidates if os.path.exists(p)))
