"""File commands: ``upload``, ``uploaddir``, ``download``, ``cat``, ``delete`` and
``show files``.

``download REMOTE [LOCAL]`` writes one local file per vessel, named
``LOCAL.<host>_<port>_<vessel>`` as Seattle's seash does. ``uploaddir DIR`` uploads every
regular file of DIR (not its subdirectories) or, when some entry cannot be uploaded, nothing.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import trio

from nodemanager import NodeClient
from nodemanager.errors import BadArguments, DiskQuotaExceeded, NodeManagerError
from nodemanager.proto.messages import MAX_FILE_BYTES, check_filename
from seash.client import Job, NodeResult, describe_error
from seash.commands import Args
from seash.errors import SeashError
from seash.executor import Executor

PER_FILE_OVERHEAD = 4096
"""Bytes a node charges to ``diskused`` for each file besides its size (docs/protocol.md)."""
MAX_UPLOADDIR_BYTES = 256 * 1024 * 1024


def read_local(name: str) -> bytes:
    """The bytes of a local file, or a SeashError saying why not."""
    try:
        return Path(name).expanduser().read_bytes()
    except OSError as exc:
        raise SeashError(f"cannot read {name}: {exc.strerror}") from exc


def per_vessel_path(local: str, job: Job) -> Path:
    """``LOCAL.<host>_<port>_<vessel>``: one local file per vessel (Seattle's naming)."""
    return Path(f"{local}.{job.host}_{job.port}_{job.vessel}").expanduser()


async def write_local(path: Path, data: bytes) -> None:
    """Write a local file, creating its directory if missing (OSError says why not)."""
    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    await trio.to_thread.run_sync(write)


async def upload_to_target(ex: Executor, command: str, local: str, remote: str) -> list[NodeResult]:
    """AddFileToVessel on every target; big files get a deadline of size / uploadrate."""
    data = read_local(local)
    s = ex.session
    deadline = max(s.settings.timeout, len(data) / s.settings.uploadrate)
    jobs = [dataclasses.replace(job, deadline=deadline) for job in ex.jobs()]

    async def op(client: NodeClient, job: Job) -> int:
        await client.add_file(job.vessel, remote, data)
        return len(data)

    return await ex.fan(command, op, lambda n: f"uploaded {remote} ({n} bytes)", jobs=jobs)


async def upload(ex: Executor, args: Args) -> None:
    local = args.need("file")
    await upload_to_target(ex, "upload", local, args.get("remote") or Path(local).name)


async def download(ex: Executor, args: Args) -> None:
    remote = args.need("remote")
    local = args.get("local") or Path(remote).name

    async def op(client: NodeClient, job: Job) -> str:
        data = await client.retrieve_file(job.vessel, remote)
        path = per_vessel_path(local, job)
        await write_local(path, data)
        return f"{len(data)} bytes -> {path}"

    await ex.fan("download", op, str)


async def cat(ex: Executor, args: Args) -> None:
    remote = args.need("remote")

    async def op(client: NodeClient, job: Job) -> str:
        return (await client.retrieve_file(job.vessel, remote)).decode("utf-8", "replace")

    await ex.fan("cat", op, lambda text: "\n" + str(text).rstrip("\n"))


async def delete(ex: Executor, args: Args) -> None:
    remote = args.need("remote")

    async def op(client: NodeClient, job: Job) -> str:
        await client.delete_file(job.vessel, remote)
        return f"deleted {remote}"

    await ex.fan("delete", op, str)


async def show_files(ex: Executor, args: Args) -> None:
    async def op(client: NodeClient, job: Job) -> list[str]:
        return await client.list_files(job.vessel)

    await ex.fan("files", op, lambda files: " ".join(files) or "(no files)")


@dataclass(frozen=True, slots=True)
class DirPlan:
    """What ``uploaddir`` would do with a directory: its files, and what it must refuse."""

    files: tuple[tuple[str, bytes], ...]
    """(vessel file name, contents), sorted by name."""
    refused: tuple[tuple[str, str], ...]
    """(entry name, why it cannot be uploaded)."""

    @property
    def charge(self) -> int:
        """Bytes the files count against a vessel's ``diskused``."""
        return sum(len(data) + PER_FILE_OVERHEAD for _, data in self.files)


def _refusal(directory: Path, entry: os.DirEntry[str]) -> str | None:
    """Why ``entry`` of ``directory`` cannot be uploaded, or None."""
    if entry.is_symlink():
        root, target = os.path.realpath(directory), os.path.realpath(entry.path)
        if os.path.commonpath([root, target]) != root or target == root:
            return "a symbolic link out of the directory"
        if not os.path.isfile(target):
            return "a symbolic link to something else than a regular file"
    elif entry.is_dir(follow_symlinks=False):
        return "a directory (uploaddir does not descend into subdirectories)"
    elif not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
        return "not a regular file"
    try:
        check_filename(entry.name)
    except BadArguments as exc:
        return f"a name vessels refuse ({exc})"
    if entry.stat().st_size > MAX_FILE_BYTES:
        return f"larger than the {MAX_FILE_BYTES} bytes a node accepts in one file"
    return None


def plan_dir(directory: Path) -> DirPlan:
    """Read ``directory``'s uploadable files; list every entry that cannot be uploaded."""
    files: list[tuple[str, bytes]] = []
    refused: list[tuple[str, str]] = []
    total = 0
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            reason = _refusal(directory, entry)
            if reason is not None:
                refused.append((entry.name, reason))
                continue
            total += entry.stat().st_size
            if total > MAX_UPLOADDIR_BYTES:
                raise SeashError(f"{directory} holds more than {MAX_UPLOADDIR_BYTES} bytes of files")
            files.append((entry.name, Path(entry.path).read_bytes()))
    except OSError as exc:
        raise SeashError(f"cannot read {exc.filename or directory}: {exc.strerror}") from exc
    return DirPlan(tuple(files), tuple(refused))


def _refused_text(refused: tuple[tuple[str, str], ...]) -> str:
    return "\n".join(f"  {name}: {reason}" for name, reason in refused)


async def _upload_all(client: NodeClient, job: Job, plan: DirPlan) -> tuple[int, int]:
    """Check the vessel's disk limit, then upload every file; (files, bytes)."""
    limit = (await client.get_vessel_resources(job.vessel))["diskused"]
    if plan.charge > limit:
        raise DiskQuotaExceeded(f"the {len(plan.files)} files count {plan.charge} bytes against "
                                f"a disk limit of {limit:.0f}; nothing uploaded")
    done: list[str] = []
    for name, data in plan.files:
        try:
            await client.add_file(job.vessel, name, data)
        except NodeManagerError as exc:
            if not done:
                raise
            raise NodeManagerError(f"{describe_error(exc)} (at {name}: {len(done)} of "
                                   f"{len(plan.files)} files uploaded: {' '.join(done)})") from exc
        done.append(name)
    return len(done), sum(len(data) for _, data in plan.files)


async def uploaddir(ex: Executor, args: Args) -> None:
    """Upload every regular file of DIR to each target (refusing the lot on a bad entry)."""
    directory = args.need("directory")
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise SeashError(f"{directory} is not a directory")
    plan = await trio.to_thread.run_sync(plan_dir, path)
    if plan.refused and not args.flag("--skip"):
        raise SeashError(f"nothing uploaded: {len(plan.refused)} entries of {directory} cannot be "
                         f"uploaded (remove them, or use --skip to upload the rest):\n"
                         + _refused_text(plan.refused))
    if plan.refused:
        ex.reporter.text(f"skipped {len(plan.refused)} entries of {directory}:\n"
                         + _refused_text(plan.refused))
    if not plan.files:
        raise SeashError(f"{directory} has no files to upload")
    s = ex.session
    deadline = max(s.settings.timeout, plan.charge / s.settings.uploadrate)
    jobs = [dataclasses.replace(job, deadline=deadline) for job in ex.jobs()]

    async def op(client: NodeClient, job: Job) -> tuple[int, int]:
        return await _upload_all(client, job, plan)

    await ex.fan("uploaddir", op, lambda done: f"uploaded {done[0]} files ({done[1]} bytes)",
                 jobs=jobs)
