"""The node manager's software updater (trio): check, verify, stage, restart, prove health.

One ``UpdateService`` per daemon started with ``--updates DIR`` (a managed install's
``PREFIX/updates``). It

- serves this node's verified update files to peers (``mirror.MirrorServer``) and
  advertises that in the DHT: an advert under ``channel_key(root)`` naming ``sw-VERSION``;
- every ``interval`` (jittered +-50 %) finds holders in the DHT (plus the local ``inbox``
  a publisher may drop a repository into), runs the TUF check in a worker thread
  (``tufclient``), and, for a newer release built for this machine and not marked bad,
  runs ``seattle-installer stage-update`` (installer/donor/software.py): the new version is built
  beside the old one and made current, on trial;
- records which programs run, then asks the daemon to exit with the restart code: the
  launcher starts the new version, which restarts those programs with their arguments;
- on a start that is a trial, proves health (a signed GetNodeStatus to itself answered, the
  DHT joined) and ends the trial by deleting ``pending.json``. If it cannot within the
  deadline, the launcher rolls back (installer/donor/launcher.py).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import trio

from nodemanager.errors import NodeManagerError, UpdateError
from nodemanager.node import model
from nodemanager.node.server import NodeServer
from nodemanager.node.vessels import ProgramRunner, ReportLike
from nodemanager.proto.client import open_node_client
from nodemanager.updates.holders import CheckProgress, FetchPolicy, HolderBook
from nodemanager.updates.mirror import MirrorServer, MirrorStore
from nodemanager.updates.tufclient import (
    CheckContext,
    CheckResult,
    DirSource,
    PeerSource,
    Source,
    run_check,
)
from nodemanager.updates.updatecore import (
    UpdateStatus,
    advert_name,
    advertised_version,
    channel_key,
    next_delay,
)
from overlay import Announcer, Directory, OverlayError
from sandbox import LogSlice, ResourceTable
from seattlecore import KeyPair

log = logging.getLogger(__name__)

RESTART_CODE = 75
"""Exit code asking the launcher to start ``current`` again (a new version)."""
SAVE_EVERY = 0.5
"""Seconds between status.json writes while a check runs."""
PROJECT = "seattle-p2p"


def running_version() -> str:
    """The installed project version this interpreter runs."""
    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:
        return "0"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateConfig:
    """Where a managed install keeps update state, and how often to check."""

    updates: Path
    """``PREFIX/updates``: root.json, tuf/, mirror/, inbox/, pending.json, bad/, status.json."""
    interval: float = 600.0
    health_deadline: float = 120.0
    listen_host: str = "127.0.0.1"
    advertise_host: str | None = None
    mirror_port: int = 0
    peers: tuple[tuple[str, int], ...] = ()
    """Mirrors to ask besides those found in the DHT."""
    need_dht: bool = True
    """Health requires DHT peers (false when the node was started without bootstrap peers)."""
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    """Deadlines, hedging and how many holders a check asks (docs/updates.md)."""

    @property
    def prefix(self) -> Path:
        return self.updates.parent


class RecordingRunner:
    """A ``ProgramRunner`` that remembers each program's name and arguments (to restart them)."""

    def __init__(self, inner: ProgramRunner) -> None:
        self.inner = inner
        self.started: dict[str, tuple[str, list[str]]] = {}

    async def start(self, *, vessel: str, directory: Path, resources: ResourceTable, program: str,
                    args: list[str], log_path: Path) -> object:
        result = await self.inner.start(vessel=vessel, directory=directory, resources=resources,
                                        program=program, args=args, log_path=log_path)
        self.started[vessel] = (program, list(args))
        return result

    async def stop(self, vessel: str) -> object:
        return await self.inner.stop(vessel)

    def report(self, vessel: str) -> ReportLike:
        return self.inner.report(vessel)

    def log_since(self, vessel: str, since: int | None, log_path: Path | None = None) -> LogSlice:
        return self.inner.log_since(vessel, since, log_path)

    async def wait(self, vessel: str) -> ReportLike:
        return await self.inner.wait(vessel)

    def forget(self, vessel: str) -> None:
        self.started.pop(vessel, None)
        self.inner.forget(vessel)

    def running(self) -> list[dict[str, Any]]:
        """``[{vessel, program, args}]`` of programs running now."""
        return [{"vessel": v, "program": p, "args": a} for v, (p, a) in sorted(self.started.items())
                if self.inner.report(v).status == "Started"]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True, indent=1) + "\n")
    tmp.replace(path)


def _event(updates: Path, **fields: object) -> None:
    with (updates / "events.log").open("a") as handle:
        handle.write(json.dumps({"at": time.time(), **fields}, sort_keys=True) + "\n")


@dataclass
class _Held:
    """The newest release this node holds complete (record + wheels) and serves."""

    version: str
    wheels: tuple[Path, ...] = field(default_factory=tuple)


class UpdateService:
    """See the module docstring. ``request_restart`` makes the daemon exit with RESTART_CODE."""

    def __init__(self, config: UpdateConfig, server: NodeServer, keys: KeyPair,
                 request_restart: Callable[[], None], *, node_port: int,
                 runner: RecordingRunner | None = None, directory: Directory | None = None,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.server = server
        self.keys = keys
        self.request_restart = request_restart
        self.node_port = node_port
        self.runner = runner
        self.directory = directory
        self.rng = rng or random.Random(int.from_bytes(os.urandom(16), "big"))
        self.book = HolderBook()
        self.progress: CheckProgress | None = None
        self._saved_at = 0.0
        self.anchor = (config.updates / "root.json").read_bytes()
        self.channel = channel_key(self.anchor)
        self.store = MirrorStore(config.updates / "mirror")
        self.mirror = MirrorServer(self.store.root)
        self.status = UpdateStatus(running=running_version())
        self.held = _Held(version=self.status.running)
        self.mirror_address = ""
        self._announcer: Announcer | None = None
        self._checking = trio.Lock()
        self._served_base = (0, 0)
        """Files and bytes served in earlier lives (from status.json): counters are cumulative."""
        self._load_status()

    # ---- the service ----

    async def run(self, *, directory: Directory | None = None,
                  task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Mirror, advert, trial and the check loop, until cancelled; ``started(mirror_port)``.
        ``directory``: where to advertise the mirror and find peers, for a service made
        before the directory exists (the DHT's)."""
        if directory is not None:
            self.directory = directory
        self.store.root.mkdir(parents=True, exist_ok=True)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(self.mirror.serve, self.config.listen_host,
                                       self.config.mirror_port)
            host = self.config.advertise_host or self.config.listen_host
            self.mirror_address = f"{host}:{port}"
            (self.config.updates / "mirror.port").write_text(f"{port}\n")
            if self.directory is not None:
                self._announcer = Announcer(self.directory, self.keys, self.mirror_address)
                self._announcer.update([(advert_name(self.held.version), self.channel)])
                nursery.start_soon(self._announcer.run)
            task_status.started(port)
            try:
                await self.resume_programs()
                nursery.start_soon(self.prove_health)
                await self._loop()
            finally:
                self._save_status()  # keep the served counters over a restart

    async def _loop(self) -> None:
        while True:
            await trio.sleep(next_delay(self.config.interval, self.rng))
            await self.check_now()

    def status_dict(self) -> Mapping[str, object]:
        """The ``updates`` map of GetNodeStatus."""
        self.status.served_files = self._served_base[0] + self.mirror.stats.files
        self.status.served_bytes = self._served_base[1] + self.mirror.stats.bytes
        self.status.trial = _read_json(self.config.updates / "pending.json")
        progress = self.progress
        self.status.current_check = None if progress is None else progress.to_dict(time.monotonic())
        if progress is not None:
            self.status.excluded_peers = progress.dropped(frozenset({"slow", "lying"}))
        return self.status.to_dict()

    def _load_status(self) -> None:
        """Carry what the previous life verified and its checks over a restart (status.json)."""
        old = _read_json(self.config.updates / "status.json")
        if not isinstance(old, dict):
            return
        latest, when, result = old.get("latest_verified"), old.get("last_check_at"), old.get("last_result")
        self.status.latest_verified = latest if isinstance(latest, str) else None
        self.status.last_check_at = float(when) if isinstance(when, int | float) else None
        self.status.last_result = str(result)[:500] if result is not None else self.status.last_result
        good, last = old.get("last_good_check"), old.get("last_check")
        self.status.last_good_check = good if isinstance(good, dict) else None
        self.status.last_check = last if isinstance(last, dict) else None
        checks, failures = old.get("checks"), old.get("failures")
        self.status.checks = checks if isinstance(checks, int) else 0
        self.status.failures = failures if isinstance(failures, int) else 0
        files, served = old.get("served_files"), old.get("served_bytes")
        self._served_base = (files if isinstance(files, int) else 0,
                             served if isinstance(served, int) else 0)

    def _save_status(self) -> None:
        _write_json(self.config.updates / "status.json", dict(self.status_dict()))

    # ---- checking ----

    async def find_sources(self) -> list[Source]:
        """The inbox (if a publisher dropped a repository there), then the holders to ask:
        configured peers and DHT adverts, ordered and capped by the holder book."""
        sources: list[Source] = []
        inbox = self.config.updates / "inbox"
        if (inbox / "metadata" / "timestamp.json").exists():
            sources.append(DirSource(inbox))
        addresses: dict[str, tuple[str, int]] = {}
        for host, port in self.config.peers:
            addresses[f"{host}:{port}"] = (host, port)
        if self.directory is not None:
            try:
                found = await self.directory.lookup(self.channel)
            except OverlayError as exc:
                log.info("update holders lookup failed: %s", exc)
            else:
                for advert in found.candidates:
                    if advert.node_key == self.keys.public or advertised_version(advert.vessel) is None:
                        continue
                    host, _, digits = advert.address.rpartition(":")
                    if digits.isdigit() and host:
                        where = (host.strip("[]"), int(digits))
                        addresses.setdefault(f"{where[0]}:{where[1]}", where)
        chosen = self.book.choose(list(addresses), self.config.policy, self.rng)
        sources += [PeerSource(addresses[name]) for name in chosen]
        return sources

    def _bad(self) -> frozenset[str]:
        bad = self.config.updates / "bad"
        return frozenset(p.name for p in bad.iterdir()) if bad.is_dir() else frozenset()

    async def check_now(self) -> CheckResult | None:
        """One check (skipped while a trial runs); its result also lands in ``status``."""
        if (self.config.updates / "pending.json").exists():
            return None
        async with self._checking:
            self.status.checks += 1
            self.status.last_check_at = time.time()
            self.progress = progress = CheckProgress(
                number=self.book.begin(), started_at=self.status.last_check_at,
                started_mono=time.monotonic())
            self._save_status()
            ctx = CheckContext(tuf_dir=self.config.updates / "tuf", store=self.store,
                               anchor=self.anchor, running=self.status.running, bad=self._bad(),
                               local_wheels=self.config.updates / "wheels")
            try:
                sources = await self.find_sources()
                progress.add(s.name for s in sources)
                result = await run_check(ctx, sources, policy=self.config.policy, book=self.book,
                                         progress=progress, on_change=self._progress_changed)
            except UpdateError as exc:
                self.status.failures += 1
                self.status.last_result = f"failed: {exc}"[:500]
                self._end_check(progress)
                return None
            self._after_check(result)
            self._end_check(progress)
            if result.decision == "install":
                progress.phase = "staging"
                await self.install(result)
            return result

    def _progress_changed(self) -> None:
        """Status shows a running check as it goes (status.json at most every SAVE_EVERY s)."""
        now = time.monotonic()
        if now - self._saved_at >= SAVE_EVERY:
            self._saved_at = now
            self._save_status()

    def _end_check(self, progress: CheckProgress) -> None:
        done = progress.to_dict(time.monotonic())
        done["result"] = self.status.last_result
        self.status.last_check = done
        self.status.excluded_peers = progress.dropped(frozenset({"slow", "lying"}))
        self.progress = None
        self._save_status()

    def _after_check(self, result: CheckResult) -> None:
        self.status.excluded_peers = list(result.excluded)
        self.status.last_result = result.message
        assert self.progress is not None
        self.status.last_good_check = {
            "number": self.progress.number, "at": self.status.last_check_at,
            "elapsed": round(time.monotonic() - self.progress.started_mono, 2),
            "result": result.message}
        if result.release is not None:
            self.status.latest_verified = result.release.version
            if result.decision != "platform":
                self.held = _Held(version=result.release.version, wheels=result.wheels)
                if self._announcer is not None:
                    self._announcer.update([(advert_name(self.held.version), self.channel)])
        self._save_status()

    # ---- switching ----

    async def install(self, result: CheckResult) -> None:
        """Stage the verified release, record running programs, restart into it."""
        assert result.release is not None
        version = result.release.version
        with tempfile.TemporaryDirectory(prefix="seattle-update-") as tmp:
            wheel_links(result.wheels, result.release.wheels, Path(tmp))
            argv = [sys.executable, "-m", "installer", "stage-update", "--prefix",
                    str(self.config.prefix), "--version", version, "--wheels", tmp,
                    "--deadline", str(self.config.health_deadline)]
            done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True,
                                          check=False)
        if done.returncode != 0:
            self.status.failures += 1
            self.status.last_result = f"staging {version} failed: {done.stderr.decode()[-300:]}"
            self._save_status()
            return
        programs = self.runner.running() if self.runner is not None else []
        _write_json(self.config.updates / "resume.json", programs)
        self.status.last_result = f"switched to {version}; restarting"
        self._save_status()
        log.warning("switching to version %s; restarting (%d programs to resume)", version,
                    len(programs))
        self.request_restart()

    async def resume_programs(self) -> None:
        """Start again the programs that ran when the previous life restarted for an update."""
        entries = _read_json(self.config.updates / "resume.json")
        if not isinstance(entries, list):
            return
        for entry in entries:
            vessel = self.server.state.vessels.get(str(entry.get("vessel")))
            if vessel is None or vessel.status != "Terminated":
                continue
            effect = model.StartProgram(vessel=vessel.name, program=str(entry["program"]),
                                        args=tuple(map(str, entry["args"])),
                                        resources=vessel.resources)
            try:
                await self.server._start_program(effect)
            except NodeManagerError as exc:
                log.warning("could not restart %s in %s: %s", effect.program, vessel.name, exc)
        if not (self.config.updates / "pending.json").exists():
            (self.config.updates / "resume.json").unlink(missing_ok=True)

    async def prove_health(self) -> None:
        """End a trial of this version once it answers a signed status call and joined the DHT."""
        pending = _read_json(self.config.updates / "pending.json")
        if not isinstance(pending, dict) or pending.get("to") != self.status.running:
            return
        while not await self.healthy():
            await trio.sleep(0.5)
        (self.config.updates / "pending.json").unlink(missing_ok=True)
        (self.config.updates / "resume.json").unlink(missing_ok=True)
        _event(self.config.updates, event="healthy", version=self.status.running)
        self.status.last_result = f"version {self.status.running} passed its health check"
        self._save_status()
        log.info("version %s is healthy; trial over", self.status.running)

    async def healthy(self) -> bool:
        try:
            async with open_node_client("127.0.0.1", self.node_port, identity=self.keys,
                                        node_key=self.keys.public, timeout=5) as client:
                status = await client.get_node_status()
        except NodeManagerError as exc:
            log.info("health: status call failed: %s", exc)
            return False
        if self.status.running not in status.version:
            return False
        if self.directory is None or not self.config.need_dht:
            return True
        try:
            found = await self.directory.lookup(self.channel)
        except OverlayError:
            return False
        return bool(found.peers_answered)


def wheel_links(wheels: Sequence[Path], names: Sequence[str], directory: Path) -> None:
    """Name verified mirror files (``<sha256>.NAME``) as pip expects (``NAME``)."""
    for path, name in zip(wheels, names, strict=True):
        (directory / name).symlink_to(path)
