"""File commands: ``upload``, ``download``, ``cat``, ``delete`` and ``show files``.

``download REMOTE [LOCAL]`` writes one local file per vessel, named
``LOCAL.<host>_<port>_<vessel>`` as Seattle's seash does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio

from nodemanager import NodeClient
from seash.client import Job, NodeResult
from seash.commands import Args
from seash.errors import SeashError
from seash.executor import Executor


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
