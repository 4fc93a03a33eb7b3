"""Command handlers and the command tree (``TREE``) that binds them to names.

Each handler is ``async def (ex: Executor, args: Args) -> None``: it reads and updates
``ex.session``, talks to nodes only through ``ex.fan`` (client.py), and writes output only
through ``ex.reporter``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from nodemanager import NodeClient, NodeInfo, VesselInfo
from seash.client import Found, Job, NodeResult, contact_nodes, lookup
from seash.commands import Arg, Args, Command, Option, help_text
from seash.errors import KeyFileError, NoVesselsFound, SeashError, StateFileError, UsageError
from seash.executor import Executor, Summary
from seash.parse import parse_bool, parse_contact, parse_hostport, parse_positive
from seash.session import Identity, Session, VesselRef
from seash.statefile import decrypt_state, encrypt_state
from seattlecore import CoreError, KeyPair, load_private, load_public, save_keypair, write_atomic

FOLLOW_INTERVAL = 0.5

# ---- identities ----


def _key_path(ex: Executor, name: str, suffix: str) -> Path:
    """``NAME`` in the keys directory, or a path given as such."""
    given = Path(name).expanduser()
    if given.suffix in (".publickey", ".privatekey"):
        given = given.with_suffix("")
    candidates = [given.with_name(given.name + suffix)] if given.parent != Path(".") else []
    candidates += [ex.home / (given.name + suffix), Path(given.name + suffix)]
    for path in candidates:
        if path.exists():
            return path
    raise KeyFileError(f"no key file {given.name + suffix} in {ex.home} (use 'genkeys {given.name}')")


async def genkeys(ex: Executor, args: Args) -> None:
    name = args.need("name")
    if "/" in name or name.startswith("."):
        raise UsageError("genkeys takes a plain NAME; keys go to the keys directory (--home)")
    alias = args.get("alias") or name
    if (ex.home / f"{name}.privatekey").exists():
        raise KeyFileError(f"keys {name!r} already exist in {ex.home}; use 'loadkeys {name}'")
    keys = KeyPair.generate()
    try:
        pub, _ = save_keypair(ex.home, name, keys)
    except OSError as exc:
        raise KeyFileError(f"cannot write keys to {ex.home}: {exc.strerror}") from exc
    ex.session.add_identity(Identity(alias, keys.public, keys))
    ex.reporter.text(f"generated {alias}: {keys.public.to_text()} ({pub})")


def _load(ex: Executor, path: Path, private: bool) -> Identity:
    name = path.stem
    try:
        if private:
            keys = load_private(path)
            return Identity(name, keys.public, keys)
        return Identity(name, load_public(path))
    except CoreError as exc:
        raise KeyFileError(str(exc)) from exc


async def loadkeys(ex: Executor, args: Args) -> None:
    identity = _load(ex, _key_path(ex, args.need("name"), ".privatekey"), private=True)
    try:
        public = _load(ex, _key_path(ex, args.need("name"), ".publickey"), private=False)
    except KeyFileError:
        public = identity
    if public.public != identity.public:
        raise KeyFileError(f"{args.need('name')}: public and private key files do not match")
    alias = args.get("alias") or identity.name
    ex.session.add_identity(Identity(alias, identity.public, identity.private))
    ex.reporter.text(f"loaded {alias}: {identity.public.to_text()}")


async def loadpub(ex: Executor, args: Args) -> None:
    identity = _load(ex, _key_path(ex, args.need("file"), ".publickey"), private=False)
    alias = args.get("alias") or identity.name
    ex.session.add_identity(Identity(alias, identity.public), make_current=False)
    ex.reporter.text(f"loaded public key {alias}: {identity.public.to_text()}")


async def loadpriv(ex: Executor, args: Args) -> None:
    identity = _load(ex, _key_path(ex, args.need("file"), ".privatekey"), private=True)
    alias = args.get("alias") or identity.name
    ex.session.add_identity(Identity(alias, identity.public, identity.private))
    ex.reporter.text(f"loaded private key {alias}")


async def _set_or_scope(ex: Executor, attr: str, value: str, rest: list[str]) -> None:
    """Set session ``attr`` to ``value``; with a command in ``rest``, only while it runs."""
    if not rest:
        setattr(ex.session, attr, value)
        return
    saved = getattr(ex.session, attr)
    setattr(ex.session, attr, value)
    try:
        await ex.run_words(rest)
    finally:
        setattr(ex.session, attr, saved)


async def as_identity(ex: Executor, args: Args) -> None:
    name = args.need("name")
    ex.session.identity(name)
    await _set_or_scope(ex, "current", name, args.many("command"))


async def on_target(ex: Executor, args: Args) -> None:
    target = args.need("target")
    ex.session.resolve(target)
    await _set_or_scope(ex, "target", target, args.many("command"))


async def show_identities(ex: Executor, args: Args) -> None:
    s = ex.session
    rows = [[("* " if i.name == s.current else "  ") + i.name, i.public.short(),
             "yes" if i.private else "no"] for i in s.identities.values()]
    ex.reporter.table("identities", ["name", "key", "private"], rows)


async def show_keys(ex: Executor, args: Args) -> None:
    rows = [[i.name, i.public.to_text()] for i in ex.session.identities.values()]
    ex.reporter.table("keys", ["name", "public key"], rows)


# ---- finding vessels ----


def _adopt(ex: Executor, node: tuple[str, int], found: Found, only: str | None = None) -> list[int]:
    ids = []
    for vessel in found.vessels:
        if only is None or vessel.name == only:
            ids.append(ex.session.add_vessel(VesselRef(node[0], node[1], vessel.name, found.node_key),
                                             vessel))
    return ids


def _render_found(value: Found) -> str:
    names = ", ".join(v.name for v in value.vessels) or "none"
    return f"{len(value.vessels)} of {value.total} vessels usable: {names}"


async def _contact(ex: Executor, command: str, nodes: list[tuple[tuple[str, int], Any]],
                   only: str | None = None) -> list[int]:
    s = ex.session
    key = s.signing_key()
    start = trio.current_time()
    ex.reporter.start(command, len(nodes))
    results = await contact_nodes(
        ex.pool, nodes, identity=key, limiter=trio.CapacityLimiter(s.settings.concurrency),
        timeout=s.settings.timeout,
        on_result=lambda r: ex.reporter.result(r, _render_found(r.value) if r.ok else None))
    ids: list[int] = []
    for (node, _), result in zip(nodes, results, strict=True):
        if result.ok:
            ids += _adopt(ex, node, result.value, only)
        else:
            ex.mark_failed()
    ok, failed, slow = (sum(1 for r in results if r.status == st) for st in ("ok", "failed", "timeout"))
    ex.reporter.finish(Summary(command, ok, failed, slow, trio.current_time() - start))
    s.record_outcome(command, ids, [])
    if not ids:
        raise NoVesselsFound(f"no vessels usable by {s.current} found")
    ex.reporter.text(f"{len(ids)} vessels ready (group {command}good); 'list' shows them")
    return ids


async def browse(ex: Executor, args: Args) -> None:
    s = ex.session
    identity = s.identity()
    s.signing_key()
    found = await lookup(identity.public, s.settings.bootstrap, s.settings.timeout)
    nodes: dict[tuple[str, int], Any] = {}
    for advert in found.candidates:
        nodes.setdefault(parse_hostport(advert.address), advert.node_key)
    if not nodes:
        raise NoVesselsFound(f"the DHT knows no vessels for {identity.name} "
                             f"({identity.public.short()}); {len(found.peers_answered)} peers asked")
    ex.reporter.text(f"DHT: {len(found.candidates)} adverts on {len(nodes)} nodes "
                     f"({found.elapsed:.2f} s)")
    await _contact(ex, "browse", list(nodes.items()))


async def contact(ex: Executor, args: Args) -> None:
    host, port, vessel = parse_contact(args.need("address"))
    await _contact(ex, "contact", [((host, port), None)], only=vessel)


def _node_info_op(cache: dict[tuple[str, int], NodeInfo]) -> Any:
    async def op(client: NodeClient, job: Job) -> VesselInfo:
        info = cache.get(job.node)
        if info is None:
            info = cache[job.node] = await client.get_vessels()
        for vessel in info.vessels:
            if vessel.name == job.vessel:
                return vessel
        from nodemanager.errors import NoSuchVessel

        raise NoSuchVessel(job.vessel)
    return op


async def list_vessels(ex: Executor, args: Args, *, quiet: bool = False) -> None:
    s = ex.session
    me = s.identity().public

    def render(v: VesselInfo) -> str:
        mark = "*" if v.owner == me else " "
        reason = f" ({v.exit_reason})" if v.exit_reason else ""
        return f"{mark} {v.name:<6} {v.status}{reason}  {v.owner_info}"

    results = await ex.fan("list", _node_info_op({}), render, quiet=quiet)
    for result in results:
        if result.ok:
            s.info[int(result.target[1:])] = result.value


async def update(ex: Executor, args: Args) -> None:
    await list_vessels(ex, args, quiet=True)


async def show_targets(ex: Executor, args: Args) -> None:
    s = ex.session
    rows = []
    for n, ref in sorted(s.vessels.items()):
        info = s.info.get(n)
        rows.append([f"%{n}", ref.address, info.status if info else "?"])
    ex.reporter.table("targets", ["id", "vessel", "status"], rows)


async def show_groups(ex: Executor, args: Args) -> None:
    rows = [[name, " ".join(f"%{n}" for n in ids) or "(empty)"]
            for name, ids in sorted(ex.session.groups.items())]
    ex.reporter.table("groups", ["group", "members"], rows)


# ---- groups ----


async def add(ex: Executor, args: Args) -> None:
    s = ex.session
    ids = s.resolve(args.get("target"))
    s.add_to_group(args.need("group"), ids)
    ex.reporter.text(f"group {args.need('group')}: {len(s.groups[args.need('group')])} vessels")


def _current_group(s: Session) -> str:
    if s.target not in s.groups:
        raise UsageError("give 'from GROUP' (the current target is not a named group)")
    return s.target


async def remove(ex: Executor, args: Args) -> None:
    s = ex.session
    group = args.get("group") or _current_group(s)
    if args.get("target") is None:
        s.delete_group(group)
        if s.target == group:
            s.target = "%all"
        ex.reporter.text(f"removed group {group}")
        return
    s.remove_from_group(group, s.resolve(args.get("target")))
    ex.reporter.text(f"group {group}: {len(s.groups[group])} vessels")


async def move(ex: Executor, args: Args) -> None:
    s = ex.session
    ids = s.resolve(args.need("target"))
    if s.target in s.groups:
        s.remove_from_group(s.target, ids)
    s.add_to_group(args.need("group"), ids)
    ex.reporter.text(f"group {args.need('group')}: {len(s.groups[args.need('group')])} vessels")


# ---- per-vessel ----


def _read_local(name: str) -> bytes:
    try:
        return Path(name).expanduser().read_bytes()
    except OSError as exc:
        raise SeashError(f"cannot read {name}: {exc.strerror}") from exc


async def _upload(ex: Executor, command: str, local: str, remote: str) -> list[NodeResult]:
    data = _read_local(local)
    s = ex.session
    deadline = max(s.settings.timeout, len(data) / s.settings.uploadrate)
    jobs = [dataclasses.replace(job, deadline=deadline) for job in ex.jobs()]

    async def op(client: NodeClient, job: Job) -> int:
        await client.add_file(job.vessel, remote, data)
        return len(data)

    return await ex.fan(command, op, lambda n: f"uploaded {remote} ({n} bytes)", jobs=jobs)


async def upload(ex: Executor, args: Args) -> None:
    local = args.need("file")
    await _upload(ex, "upload", local, args.get("remote") or Path(local).name)


async def download(ex: Executor, args: Args) -> None:
    remote = args.need("remote")
    local = args.get("local") or Path(remote).name

    async def op(client: NodeClient, job: Job) -> str:
        data = await client.retrieve_file(job.vessel, remote)
        path = Path(f"{local}.{job.host}_{job.port}_{job.vessel}")
        await trio.to_thread.run_sync(path.write_bytes, data)
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


async def _start(ex: Executor, command: str, program: str, argv: list[str]) -> None:
    async def op(client: NodeClient, job: Job) -> str:
        return await client.start_vessel(job.vessel, program, argv)

    await ex.fan(command, op, lambda status: f"started {program}: {status}")


async def start(ex: Executor, args: Args) -> None:
    await _start(ex, "start", args.need("program"), args.many("args"))


async def run(ex: Executor, args: Args) -> None:
    local = args.need("program")
    remote = Path(local).name
    uploaded = await _upload(ex, "run", local, remote)
    good = [r.target for r in uploaded if r.ok]
    if not good:
        return
    saved = ex.session.target
    ex.session.target = "rungood"
    try:
        await _start(ex, "run", remote, args.many("args"))
    finally:
        ex.session.target = saved


def _simple(command: str, method: str, done: str) -> Any:
    async def handler(ex: Executor, args: Args) -> None:
        async def op(client: NodeClient, job: Job) -> str:
            return str(await getattr(client, method)(job.vessel))

        await ex.fan(command, op, lambda status: f"{done}: {status}")
    return handler


async def show_log(ex: Executor, args: Args) -> None:
    async def op(client: NodeClient, job: Job) -> str:
        return (await client.read_log(job.vessel)).decode("utf-8", "replace")

    follow = args.flag("--follow") or args.option("--for") is not None
    results = await ex.fan("log", op, _log_text)
    if not follow:
        return
    seen = {r.target: str(r.value) for r in results if r.ok}
    limit = args.option("--for")
    with trio.move_on_after(parse_positive(limit, "--for") if limit else float("inf")):
        while True:
            await trio.sleep(FOLLOW_INTERVAL)
            for result in await _poll(ex, op):
                old = seen.get(result.target, "")
                text = str(result.value)
                if result.ok and text != old:
                    fresh = text[len(old):] if text.startswith(old) else text
                    seen[result.target] = text
                    ex.reporter.result(result, fresh.rstrip("\n"))


def _log_text(text: object) -> str:
    body = str(text).rstrip("\n")
    return "\n" + body if body else "(log is empty)"


async def _poll(ex: Executor, op: Any) -> list[NodeResult]:
    from seash.client import fan_out

    s = ex.session
    return await fan_out(ex.pool, ex.jobs(), op, identity=s.signing_key(),
                         limiter=trio.CapacityLimiter(s.settings.concurrency),
                         timeout=s.settings.timeout)


async def show_resources(ex: Executor, args: Args) -> None:
    async def op(client: NodeClient, job: Job) -> str:
        return (await client.get_vessel_resources(job.vessel)).to_text()

    await ex.fan("resources", op, lambda text: "\n" + str(text).rstrip("\n"))


def _one_per_node(ex: Executor) -> list[Job]:
    jobs: dict[tuple[str, int], Job] = {}
    for job in ex.jobs():
        jobs.setdefault(job.node, dataclasses.replace(job, target=f"{job.host}:{job.port}"))
    return list(jobs.values())


async def show_offcut(ex: Executor, args: Args) -> None:
    async def op(client: NodeClient, job: Job) -> str:
        return (await client.get_offcut_resources()).to_text()

    await ex.fan("offcut", op, lambda text: "\n" + str(text).rstrip("\n"), jobs=_one_per_node(ex),
                 groups=False)


def _cached(ex: Executor, title: str, columns: list[str], row: Any) -> None:
    s = ex.session
    rows = []
    for n in s.resolve():
        info = s.info.get(n)
        ref = s.vessels[n]
        rows.append([f"%{n}", *(row(ref, info) if info else ["? (run 'list')"])])
    ex.reporter.table(title, ["id", *columns], rows)


def _keys(ex: Executor, keys: Sequence[Any]) -> str:
    names = {i.public: i.name for i in ex.session.identities.values()}
    return " ".join(names.get(k, k.short()) for k in keys) or "(none)"


async def show_info(ex: Executor, args: Args) -> None:
    _cached(ex, "info", ["vessel", "status", "owner", "users", "advertise", "ownerinfo"],
            lambda ref, v: [ref.address, v.status, _keys(ex, [v.owner]), _keys(ex, v.users),
                            "on" if v.advertise else "off", v.owner_info])


async def show_users(ex: Executor, args: Args) -> None:
    _cached(ex, "users", ["users"], lambda ref, v: [_keys(ex, v.users)])


async def show_owner(ex: Executor, args: Args) -> None:
    _cached(ex, "owner", ["owner"], lambda ref, v: [_keys(ex, [v.owner]) + " " + v.owner.to_text()])


async def show_ownerinfo(ex: Executor, args: Args) -> None:
    _cached(ex, "ownerinfo", ["ownerinfo"], lambda ref, v: [v.owner_info])


async def show_advertise(ex: Executor, args: Args) -> None:
    _cached(ex, "advertise", ["advertise"], lambda ref, v: ["on" if v.advertise else "off"])


async def show_ip(ex: Executor, args: Args) -> None:
    s = ex.session
    hosts = sorted({f"{s.vessels[n].host}:{s.vessels[n].port}" for n in s.resolve()})
    ex.reporter.text("\n".join(hosts) or "(no vessels)")


# ---- owner ----


async def split(ex: Executor, args: Args) -> None:
    text = _read_local(args.need("resourcefile")).decode("utf-8", "replace")

    async def op(client: NodeClient, job: Job) -> tuple[str, str]:
        return await client.split_vessel(job.vessel, text)

    results = await ex.fan("split", op, lambda pair: f"split into {pair[0]} and {pair[1]}")
    s = ex.session
    first: list[int] = []
    second: list[int] = []
    for result in results:
        if result.ok:
            old = int(result.target[1:])
            ref = s.vessels[old]
            s.forget_vessel(old)
            first.append(s.add_vessel(dataclasses.replace(ref, vessel=result.value[0])))
            second.append(s.add_vessel(dataclasses.replace(ref, vessel=result.value[1])))
    s.set_group("split1", first)
    s.set_group("split2", second)
    if first:
        ex.reporter.text(f"new vessels: split1 = {' '.join(f'%{n}' for n in first)}, "
                         f"split2 = {' '.join(f'%{n}' for n in second)}")


async def join(ex: Executor, args: Args) -> None:
    s = ex.session
    by_node: dict[tuple[str, int], list[int]] = {}
    for n in s.resolve():
        by_node.setdefault(s.vessels[n].node, []).append(n)
    jobs = []
    for (host, port), ids in by_node.items():
        if len(ids) > 1:
            names = ",".join(s.vessels[n].vessel for n in ids)
            jobs.append(Job(f"{host}:{port}", host, port, names, s.vessels[ids[0]].node_key))
    if not jobs:
        raise UsageError("join needs two or more vessels of the same node in the target")

    async def op(client: NodeClient, job: Job) -> str:
        names = job.vessel.split(",")
        current = names[0]
        for name in names[1:]:
            current = await client.join_vessels(current, name)
        return current

    results = await ex.fan("join", op, lambda name: f"joined into {name}", jobs=jobs, groups=False)
    joined = []
    for job, result in zip(jobs, results, strict=True):
        if result.ok:
            ref = None
            for n in by_node[job.node]:
                ref = s.vessels[n]
                s.forget_vessel(n)
            assert ref is not None
            joined.append(s.add_vessel(dataclasses.replace(ref, vessel=result.value)))
    s.record_outcome("join", joined, [])


def _setter(command: str, change: Any, method: str) -> Any:
    async def handler(ex: Executor, args: Args) -> None:
        value = change(ex, args)

        async def op(client: NodeClient, job: Job) -> None:
            await getattr(client, method)(job.vessel, value)

        results = await ex.fan(command, op, lambda _: "done")
        field, cached = {"change_owner": ("owner", value), "change_users": ("users", tuple(value)),
                         "change_owner_info": ("owner_info", value),
                         "change_advertise": ("advertise", value)}[method]
        for result in results:
            n = int(result.target[1:])
            if result.ok and n in ex.session.info:
                ex.session.info[n] = dataclasses.replace(ex.session.info[n], **{field: cached})
    return handler


# ---- session ----


async def set_timeout(ex: Executor, args: Args) -> None:
    ex.session.settings.timeout = parse_positive(args.need("seconds"), "timeout")


async def set_uploadrate(ex: Executor, args: Args) -> None:
    ex.session.settings.uploadrate = parse_positive(args.need("rate"), "uploadrate")


async def set_concurrency(ex: Executor, args: Args) -> None:
    ex.session.settings.concurrency = int(parse_positive(args.need("count"), "concurrency"))


async def set_bootstrap(ex: Executor, args: Args) -> None:
    ex.session.settings.bootstrap = [parse_hostport(text) for text in args.many("address")]


async def show_settings(ex: Executor, args: Args) -> None:
    st = ex.session.settings
    ex.reporter.table("settings", ["setting", "value"], [
        ["timeout", f"{st.timeout:g} s"], ["uploadrate", f"{st.uploadrate:g} B/s"],
        ["concurrency", str(st.concurrency)],
        ["bootstrap", " ".join(f"{h}:{p}" for h, p in st.bootstrap) or "(none)"]])


async def _passphrase(ex: Executor, confirm: bool) -> str:
    if ex.passphrase is None:
        raise StateFileError("no passphrase: use --passphrase-file FILE or SEASH_PASSPHRASE")
    return await ex.passphrase(confirm)


async def savestate(ex: Executor, args: Args) -> None:
    path = Path(args.need("file")).expanduser()
    plain = json.dumps(ex.session.to_dict()).encode()
    blob = await trio.to_thread.run_sync(encrypt_state, plain, await _passphrase(ex, True))
    try:
        await trio.to_thread.run_sync(lambda: write_atomic(path, blob, mode=0o600))
    except OSError as exc:
        raise StateFileError(f"cannot write {path}: {exc.strerror}") from exc
    ex.reporter.text(f"saved state to {path} (encrypted)")


async def loadstate(ex: Executor, args: Args) -> None:
    path = Path(args.need("file")).expanduser()
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror}") from exc
    plain = await trio.to_thread.run_sync(decrypt_state, blob, await _passphrase(ex, False))
    try:
        ex.session = Session.from_dict(json.loads(plain))
    except (KeyError, ValueError, TypeError, CoreError) as exc:
        raise StateFileError(f"{path}: malformed state ({exc})") from exc
    ex.reporter.text(f"loaded state: {len(ex.session.identities)} identities, "
                     f"{len(ex.session.vessels)} vessels")


async def help_cmd(ex: Executor, args: Args) -> None:
    ex.reporter.text(help_text(ex.root, args.many("command")))


async def exit_cmd(ex: Executor, args: Args) -> None:
    ex.exiting = True


def _owner(ex: Executor, args: Args) -> Any:
    return ex.session.public_key(args.need("identity"))


def _users(ex: Executor, args: Args) -> Any:
    return [ex.session.public_key(word) for word in args.many("identity")]


TARGET = Arg("target", "target")
COMMAND = Arg("command", "command", optional=True, many=True)
ALIAS = Arg("alias", "word", optional=True, keyword="as")

SHOW = Command("show", help="show shell state or live vessel information", children=(
    Command("identities", "loaded identities (* = current)", show_identities, aliases=("identity",)),
    Command("keys", "full public keys of the loaded identities", show_keys, aliases=("key",)),
    Command("targets", "known vessels and their %N ids", show_targets, aliases=("target",)),
    Command("groups", "groups and their members", show_groups, aliases=("group",)),
    Command("files", "ListFilesInVessel on each target", show_files, aliases=("file",)),
    Command("log", "ReadVesselLog on each target", show_log, options=(
        Option("--follow", help="keep polling for new output until Ctrl-C"),
        Option("--for", "SECONDS", help="follow for SECONDS, then stop (for scripts)"))),
    Command("resources", "GetVesselResources on each target", show_resources,
            aliases=("resource",)),
    Command("offcut", "GetOffcutResources on each node of the target", show_offcut),
    Command("info", "cached vessel information (refresh with 'list' or 'update')", show_info),
    Command("users", "cached user keys of each target", show_users, aliases=("user",)),
    Command("owner", "cached owner key of each target", show_owner),
    Command("ownerinfo", "cached owner information string", show_ownerinfo),
    Command("advertise", "cached advertise flag", show_advertise),
    Command("ip", "node addresses of the target", show_ip, aliases=("hostname",)),
    Command("timeout", "session settings", show_settings, aliases=("uploadrate", "settings",
                                                                   "bootstrap")),
))

SET = Command("set", help="change vessels (owner only) or session settings", children=(
    Command("owner", "ChangeOwner: give the targets to IDENTITY (a name or 64 hex)",
            _setter("setowner", _owner, "change_owner"), (Arg("identity", "identity"),)),
    Command("users", "ChangeUsers: replace the user list", _setter("setusers", _users, "change_users"),
            (Arg("identity", "identity", many=True),), aliases=("user",)),
    Command("ownerinfo", "ChangeOwnerInformation",
            _setter("setownerinfo", lambda ex, a: a.get("text") or "", "change_owner_info"),
            (Arg("text", "text", many=True, optional=True),)),
    Command("advertise", "ChangeAdvertise on|off",
            _setter("setadvertise", lambda ex, a: parse_bool(a.need("flag")), "change_advertise"),
            (Arg("flag", "bool"),)),
    Command("timeout", "per-node deadline in seconds", set_timeout, (Arg("seconds", "number"),)),
    Command("uploadrate", "bytes/s assumed for uploads (larger files get longer deadlines)",
            set_uploadrate, (Arg("rate", "number"),)),
    Command("concurrency", "how many node managers to contact at once", set_concurrency,
            (Arg("count", "number"),)),
    Command("bootstrap", "DHT bootstrap peers for browse", set_bootstrap,
            (Arg("address", "hostport", many=True),)),
))

TREE = Command("", children=(
    Command("genkeys", "generate an Ed25519 key pair NAME.publickey/.privatekey in the keys dir",
            genkeys, (Arg("name", "keyname"), ALIAS)),
    Command("loadkeys", "load NAME.publickey and NAME.privatekey", loadkeys,
            (Arg("name", "keyname"), ALIAS)),
    Command("loadpub", "load a public key file (an identity that cannot sign)", loadpub,
            (Arg("file", "keyname"), ALIAS)),
    Command("loadpriv", "load a private key file", loadpriv, (Arg("file", "keyname"), ALIAS)),
    Command("as", "use identity NAME (for one COMMAND, or from now on)", as_identity,
            (Arg("name", "identity"), COMMAND)),
    Command("on", "use TARGET: %N, %all, a group or host:port:vessel (for one COMMAND or from now on)",
            on_target, (TARGET, COMMAND)),
    Command("browse", "find your vessels: DHT lookup of your key, then GetVessels on each node",
            browse),
    Command("contact", "add the usable vessels of one node manager HOST:PORT[:VESSEL]", contact,
            (Arg("address", "hostport"),)),
    Command("list", "GetVessels: status of each target (* = you own it)", list_vessels),
    Command("update", "refresh vessel information without printing it", update),
    Command("add", "add TARGET (default: current target) to GROUP", add,
            (Arg("target", "target", optional=True), Arg("group", "group", keyword="to"))),
    Command("remove", "remove TARGET from GROUP (no TARGET: delete the group)", remove,
            (Arg("target", "target", optional=True),
             Arg("group", "group", optional=True, keyword="from"))),
    Command("move", "move TARGET from the current group to GROUP", move,
            (TARGET, Arg("group", "group", keyword="to"))),
    Command("upload", "AddFileToVessel: copy local FILE into each target (as REMOTE)", upload,
            (Arg("file", "path"), Arg("remote", optional=True))),
    Command("download", "RetrieveFileFromVessel into LOCAL.<host>_<port>_<vessel>", download,
            (Arg("remote"), Arg("local", "path", optional=True))),
    Command("cat", "print a vessel file", cat, (Arg("remote"),)),
    Command("delete", "DeleteFileInVessel", delete, (Arg("remote"),)),
    Command("start", "StartVessel: run PROGRAM (already uploaded) with ARGS", start,
            (Arg("program"), Arg("args", optional=True, many=True))),
    Command("run", "upload local PROGRAM, then start it with ARGS", run,
            (Arg("program", "path"), Arg("args", optional=True, many=True))),
    Command("stop", "StopVessel", _simple("stop", "stop_vessel", "stopped")),
    Command("reset", "ResetVessel: stop, delete files, clear the log", _simple("reset", "reset_vessel",
                                                                               "reset")),
    Command("split", "SplitVessel: cut RESOURCEFILE's resources off each target (groups split1/2)",
            split, (Arg("resourcefile", "path"),)),
    Command("join", "JoinVessels: merge the target's vessels on each node into one", join),
    SHOW,
    SET,
    Command("savestate", "save the session (keys included) encrypted with a passphrase", savestate,
            (Arg("file", "path"),)),
    Command("loadstate", "restore a session saved by savestate", loadstate, (Arg("file", "path"),)),
    Command("help", "help [COMMAND...]", help_cmd, (Arg("command", "command", optional=True,
                                                        many=True),)),
    Command("exit", "leave the shell", exit_cmd, aliases=("quit",)),
))
