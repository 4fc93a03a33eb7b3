"""``seattle-nodemanager``: run the daemon, or ``init`` a node's first state.

    seattle-nodemanager --state DIR [--listen HOST:PORT] [--bootstrap HOST:PORT ...]
                        [--limit NAME=VALUE ...] [--reachability auto|public|private]
                        [--no-relay] [--relay-port P] [--relay-limit NAME=VALUE ...]
                        [--relay HOST:PORT ...]
                        [--updates PREFIX/updates [--update-interval S] ...]
    seattle-nodemanager init --state DIR --spec SPEC.json

With ``--updates`` (managed installs) the daemon also runs the software updater
(updater.py) and exits with code 75 when it switched versions: its launcher restarts it.

The daemon writes its bound port to ``DIR/nodemanager.port`` and logs to
``DIR/nodemanager.log`` and stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import trio

from nodemanager.donor.control import DONOR, DonorControl
from nodemanager.donor.reshare import apply_reshare
from nodemanager.errors import NodeManagerError
from nodemanager.nat.autonat import DialBudget, Kind, dht_client_mode, probe_order
from nodemanager.nat.dialback import DialBackServer
from nodemanager.nat.observe import local_ip, observe_host, serve_observer
from nodemanager.nat.prober import PROBE_INTERVAL, DialBackInbox, ProbeConfig, Prober
from nodemanager.nat.punch import PunchConfig, Responder
from nodemanager.nat.punchdial import PunchingServe
from nodemanager.nat.reachability import Reach, ReachabilityBoard, pinned
from nodemanager.nat.relay import RelayServer
from nodemanager.nat.relayclient import RelayClient
from nodemanager.nat.relaycore import RelayLimits, parse_limit
from nodemanager.nat.relaydir import announce_relay, find_relays
from nodemanager.node.admission import PortLimits
from nodemanager.node.discovery import (
    DiscoveryConfig,
    bootstrap_pairs,
    follow_reachability,
    serve_discovery,
    stop_on_signals,
)
from nodemanager.node.files import VesselStore
from nodemanager.node.ports import start_on_port
from nodemanager.node.server import SPARE_FDS, NodeServer, ServerConfig, raise_fd_limit
from nodemanager.node.sources import UPDATES, StatusSources
from nodemanager.node.spec import NODE_KEY_NAME, STATE_FILE, init_node, parse_spec
from nodemanager.node.state import NodeState, StateError
from nodemanager.node.vessels import ProgramRunner, UnavailableRunner
from nodemanager.updates.updater import (
    RESTART_CODE,
    RecordingRunner,
    UpdateConfig,
    UpdateService,
    running_version,
)
from overlay import DhtNode
from sandbox import Supervisor
from seattlecore import CliParser, CoreError, KeyPair, load_private, run_main, write_atomic

log = logging.getLogger("nodemanager")

PORT_FILE = "nodemanager.port"
DHT_PORT_FILE = "dht.port"
LOG_FILE = "nodemanager.log"
RUN_DIR = "run"
OBSERVER_REFRESH = 60.0
"""Seconds between refreshes of the hole-punch observers from the DHT routing table."""
"""Pid records of running vessel programs (killed at start-up if a crash left them)."""


def host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


INIT_USAGE = "seattle-nodemanager init --state DIR --spec SPEC.json"


def limit_option(text: str) -> tuple[str, int | float]:
    """``NAME=VALUE`` for one field of ``PortLimits`` (e.g. ``max_connections=2000``)."""
    name, sep, value = text.partition("=")
    default = getattr(PortLimits(), name, None) if sep else None
    if default is None:
        names = ", ".join(f.name for f in dataclasses.fields(PortLimits))
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of: {names}")
    try:
        return name, type(default)(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} needs a number, got {value!r}") from None


def relay_limit_option(text: str) -> tuple[str, int | float]:
    """``NAME=VALUE`` for one field of ``RelayLimits`` (e.g. ``max_reservations=32``)."""
    try:
        return parse_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port_limits(pairs: Sequence[tuple[str, int | float]]) -> PortLimits:
    """The defaults overridden by ``--limit`` options; ArgumentTypeError if inconsistent."""
    try:
        return PortLimits(**dict(pairs))  # type: ignore[arg-type]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--limit: {exc}") from exc


def relay_limits(pairs: Sequence[tuple[str, int | float]]) -> RelayLimits:
    """The relay defaults overridden by ``--relay-limit`` options."""
    try:
        return RelayLimits(**dict(pairs))  # type: ignore[arg-type]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--relay-limit: {exc}") from exc


def _run_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="seattle-nodemanager", description="Seattle node manager daemon",
        usage=f"%(prog)s --state DIR [options]\n       {INIT_USAGE}",
        epilog=f"commands:\n  {INIT_USAGE}\n      create the node key and the vessels of SPEC "
               "in DIR (once, before the first run); see 'seattle-nodemanager init --help'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, required=True, help="state directory")
    parser.add_argument("--listen", type=host_port, default=("127.0.0.1", 0),
                        help="HOST:PORT to listen on (default 127.0.0.1:0)")
    parser.add_argument("--bootstrap", type=host_port, action="append", default=[],
                        help="overlay bootstrap peer HOST:PORT (repeatable; stored)")
    parser.add_argument("--dht-port", type=int, default=0,
                        help="UDP port of this node's DHT node (default: any free port)")
    parser.add_argument("--advertise-host", default=None,
                        help="host to put in adverts (default: the address the bootstrap "
                             "peers see us at, else the --listen host)")
    parser.add_argument("--no-dht", action="store_true",
                        help="do not join the DHT (no discovery; direct contact only)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="never start programs (for tests of the control plane)")
    parser.add_argument("--no-ui", action="store_true",
                        help="no local donor page on 127.0.0.1 (docs/donor.md)")
    parser.add_argument("--limit", type=limit_option, action="append", default=[],
                        metavar="NAME=VALUE",
                        help="connection/request limit of the port, e.g. max_connections=2000 "
                             "(repeatable; docs/protocol.md section 10)")
    parser.add_argument("--reachability", choices=("auto", "public", "private"), default="auto",
                        help="auto (default): ask peers to dial us back (docs/nat.md); "
                             "public/private: take this as given for both ports, no probes "
                             "(private: keep reservations with relays)")
    parser.add_argument("--reachability-interval", type=float, default=PROBE_INTERVAL,
                        metavar="S", help="seconds between reachability probes once decided "
                                          f"(default {PROBE_INTERVAL:.0f})")
    relay = parser.add_argument_group("relaying (docs/nat.md)")
    relay.add_argument("--no-relay", action="store_true",
                       help="do not relay for nodes behind NAT (on by default)")
    relay.add_argument("--relay-port", type=int, default=0,
                       help="TCP port of this node's relay service (default: any free port)")
    relay.add_argument("--relay-limit", type=relay_limit_option, action="append", default=[],
                       metavar="NAME=VALUE",
                       help="relay limit, e.g. max_reservations=32 (repeatable; "
                            "docs/protocol.md section 14)")
    relay.add_argument("--relay", type=host_port, action="append", default=[],
                       dest="relays", metavar="HOST:PORT",
                       help="a relay to use when private, before those in the DHT (repeatable)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    updates = parser.add_argument_group("software updates (managed installs; docs/updates.md)")
    updates.add_argument("--updates", type=Path, default=None,
                         help="PREFIX/updates of a managed install: run the updater")
    updates.add_argument("--update-interval", type=float, default=600.0,
                         help="seconds between checks, jittered +-50%% (default 600)")
    updates.add_argument("--update-deadline", type=float, default=120.0,
                         help="seconds a new version has to prove its health (default 120)")
    updates.add_argument("--update-peer", type=host_port, action="append", default=[],
                         help="an update mirror to ask besides those in the DHT (repeatable)")
    updates.add_argument("--mirror-port", type=int, default=0,
                         help="TCP port of this node's update mirror (default: any)")
    return parser


def _update_config(options: argparse.Namespace) -> UpdateConfig | None:
    if options.updates is None:
        return None
    return UpdateConfig(updates=options.updates.absolute(), interval=options.update_interval,
                        health_deadline=options.update_deadline, listen_host=options.listen[0],
                        advertise_host=options.advertise_host, mirror_port=options.mirror_port,
                        peers=tuple(options.update_peer), need_dht=bool(options.bootstrap))


def _init_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="seattle-nodemanager init",
                       description="create a node key and vessels (the node's first state)")
    parser.add_argument("--state", type=Path, required=True, help="state directory")
    parser.add_argument("--spec", type=Path, required=True, help="vessel spec (JSON)")
    return parser


def setup_logging(state_dir: Path, verbose: bool) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in (logging.FileHandler(state_dir / LOG_FILE), logging.StreamHandler()):
        handler.setFormatter(fmt)
        root.addHandler(handler)


@asynccontextmanager
async def open_runner(sandbox: bool = True, run_dir: Path | None = None,
                      my_ip: str = "127.0.0.1") -> AsyncIterator[ProgramRunner]:
    """The sandbox supervisor, or (``--no-sandbox``) a runner that refuses to start programs.

    ``run_dir`` records each running program's pid, so a node manager restarted after a
    crash kills what its previous life left running before it starts anything; ``my_ip`` is
    what vessels' ``getmyip()`` answers.
    """
    if not sandbox:
        yield UnavailableRunner()
        return
    async with Supervisor.open(run_dir=run_dir, my_ip=my_ip) as supervisor:
        yield supervisor


@dataclass(frozen=True, slots=True)
class RelayOptions:
    """Relaying settings from the command line."""

    enabled: bool = True
    port: int = 0
    limits: RelayLimits = field(default_factory=RelayLimits)
    static: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DhtOptions:
    """Discovery settings from the command line."""

    enabled: bool = True
    port: int = 0
    advertise_host: str | None = None
    reachability: str = "auto"
    """``--reachability``: auto (probe), public or private (pinned)."""
    probe: ProbeConfig = field(default_factory=ProbeConfig)


def _local_address(host: str) -> str | None:
    """The address to connect from when asking peers about us: the listen address if it is
    a specific IP (else the kernel chooses)."""
    try:
        return None if ipaddress.ip_address(host).is_unspecified else host
    except ValueError:  # a host name: let the kernel choose
        return None


async def _observed_address(peers: Sequence[tuple[str, int]], host: str, port: int) -> str:
    """``<ip the bootstrap peers see us at>:<port>`` (``host`` if none answers)."""
    return f"{await observe_host(peers, fallback=host, local=_local_address(host))}:{port}"


async def run_daemon(state_dir: Path, host: str, port: int, bootstrap: Sequence[str],
                     sandbox: bool = True, dht: DhtOptions = DhtOptions(),
                     server_config: ServerConfig | None = None,
                     updates: UpdateConfig | None = None,
                     relay: RelayOptions = RelayOptions(), ui: bool = True) -> bool:
    """Serve until cancelled; True if the updater asked for a restart (a new version)."""
    keys = load_private(state_dir / f"{NODE_KEY_NAME}.privatekey")
    restart: list[bool] = []
    config = replace(server_config or ServerConfig(),
                     version=f"seattle-p2p-nodemanager {running_version()}")
    board = reachability_board(dht.reachability)
    sources = StatusSources(board)
    # Probed reachability: the prober (made once the DHT runs) waits here for both ports' tokens.
    dial_backs = DialBackInbox() if dht.enabled and not board.state.pinned else None
    with NodeState(state_dir / STATE_FILE) as state:
        if bootstrap:
            state.set_bootstrap(bootstrap)
        my_ip = local_ip(host, dht.advertise_host, bootstrap_pairs(bootstrap))
        async with open_runner(sandbox, state_dir / RUN_DIR, my_ip) as runner, trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_signals, nursery.cancel_scope)  # clean stop: withdraw adverts
            recording = RecordingRunner(runner) if updates is not None else None
            server = NodeServer(keys=keys, state=state, store=VesselStore(state_dir),
                                runner=recording or runner, config=config, status=sources,
                                dial_back_sink=_sink(dial_backs, Kind.TCP))
            donor = None
            if isinstance(runner, Supervisor):  # the donor's policy (docs/donor.md)
                donor = await _start_donor_control(nursery, state_dir, state, runner, sources,
                                                   server)
            bound, moved = await start_on_port(nursery, server.serve, host, port,
                                               state.ports.get("tcp"), "node manager")
            state.set_port("tcp", bound)
            if moved:
                log.warning("node manager port moved to %d: announcing the new address now", bound)
            write_atomic(state_dir / PORT_FILE, f"{bound}\n".encode())
            if donor is not None and ui:  # the donor's page, once the node serves
                await _start_ui(nursery, state_dir, server, donor)
            log.info("node %s listening on %s:%d", keys.public.to_text(), host, bound)
            print(f"nodemanager listening on {host}:{bound}", file=sys.stderr, flush=True)

            def request_restart() -> None:
                restart.append(True)
                nursery.cancel_scope.cancel()

            service = None
            if updates is not None:
                service = UpdateService(updates, server, keys, request_restart, node_port=bound,
                                        runner=recording)
                sources.provide(UPDATES, service.status_dict)
            relaying = await _start_relaying(nursery, server, sources, board, keys, host, relay,
                                             dht.enabled, state)
            await _start_discovery(nursery, server, keys, state_dir, host, bound, bootstrap, dht,
                                   service, relaying, dial_backs)
    return bool(restart)


async def _start_donor_control(nursery: trio.Nursery, state_dir: Path, state: NodeState,
                               runner: Supervisor, sources: StatusSources,
                               server: NodeServer) -> DonorControl:
    """The donor's policy applied to the vessels (and their pause reason to the adverts)."""
    def usage() -> dict[str, Mapping[str, float]]:
        return {name: runner.report(name).usage.values for name in runner.running()}

    donor = DonorControl(state_dir, runner, reshare=partial(apply_reshare, state, VesselStore(state_dir),
                                                 live=runner.set_resources),
                         percent=lambda: state.donated_percent, usage=usage,
                         vessel_count=lambda: len(state.vessels),
                         on_paused=server.set_donor_paused)
    await nursery.start(donor.run)
    sources.provide(DONOR, donor.status)
    return donor


async def _start_ui(nursery: trio.Nursery, state_dir: Path, server: NodeServer,
                    donor: DonorControl) -> None:
    """The local page (unless ``--no-ui``); a page that cannot listen is only logged."""
    from nodemanager.donor.webui import UiContext, new_token, serve_ui_or_log

    context = UiContext(state_dir, lambda: server.view(time.time()), donor, new_token())
    await nursery.start(serve_ui_or_log, context)


@dataclass(frozen=True, slots=True)
class Relaying:
    """The relay service (None with --no-relay) and the relay client of one daemon."""

    board: ReachabilityBoard
    client: RelayClient
    punching: PunchingServe
    """Relayed connections: hole punching first (docs/nat.md, Direct connections)."""
    server: RelayServer | None = None
    port: int = 0


def _punch_host(host: str) -> str:
    """The address punch sockets bind to: the listen address when it is an IPv4 one."""
    try:
        return host if ipaddress.ip_address(host).version == 4 else "0.0.0.0"
    except ValueError:
        return "0.0.0.0"


async def _start_relaying(nursery: trio.Nursery, server: NodeServer, sources: StatusSources,
                          board: ReachabilityBoard, keys: KeyPair, host: str,
                          options: RelayOptions, with_dht: bool, state: NodeState) -> Relaying:
    """The relay service (unless --no-relay) and the relay client (runs while private)."""
    punching = PunchingServe(server.handle_connection,
                             Responder(config=PunchConfig(local_host=_punch_host(host))))
    client = RelayClient(keys, punching, board, static=options.static,
                         on_change=server.set_relays)
    sources.provide("relayed", client.status)
    sources.provide("punch", punching.status)
    relay_server, port = None, 0
    if options.enabled:
        relay_server = RelayServer(keys, options.limits)
        port, _ = await start_on_port(nursery, relay_server.serve, host, options.port,
                                      state.ports.get("relay"), "relay")
        state.set_port("relay", port)
        sources.provide("relay", relay_server.status)
        print(f"relay listening on {host}:{port}", file=sys.stderr, flush=True)
    else:
        sources.provide("relay", lambda: {"enabled": False})
    if not with_dht:
        nursery.start_soon(client.run)
    return Relaying(board, client, punching, relay_server, port)


def _relay_services(relaying: Relaying, keys: KeyPair, peers: Sequence[tuple[str, int]],
                    host: str, advertise_host: str | None) -> list[Callable[[DhtNode], Awaitable[None]]]:
    """DHT services: the relay client (finds relays in the directory) and the relay's advert."""
    async def run_client(node: DhtNode) -> None:
        await relaying.client.run(find=partial(find_relays, node, keys.public))

    async def punch_observers(node: DhtNode) -> None:
        """Observers for hole punching: bootstrap peers, then DHT contacts (their TCP
        observation service shares the DHT port number), refreshed every minute."""
        while True:
            relaying.punching.set_observers([*peers, *node.sample_contacts(8)])
            await trio.sleep(OBSERVER_REFRESH)

    async def advertise(node: DhtNode) -> None:
        async def address() -> str:
            if advertise_host:
                return f"{advertise_host}:{relaying.port}"
            return await _observed_address(peers, host, relaying.port)
        await announce_relay(node, keys, relaying.board, address)

    services: list[Callable[[DhtNode], Awaitable[None]]] = [run_client, punch_observers]
    if relaying.server is not None:
        services.append(advertise)
    return services


async def _start_discovery(nursery: trio.Nursery, server: NodeServer, keys: KeyPair,
                           state_dir: Path, host: str, bound: int, bootstrap: Sequence[str],
                           dht: DhtOptions, service: UpdateService | None,
                           relaying: Relaying, dial_backs: DialBackInbox | None) -> None:
    """The DHT node (and the updater inside its loop), or the updater alone without DHT."""
    if not dht.enabled:
        if service is not None:
            nursery.start_soon(partial(service.run))
        return

    async def run_updates(node: DhtNode) -> None:
        assert service is not None
        await service.run(directory=node)

    peers = bootstrap_pairs(bootstrap)
    board = relaying.board
    can_probe = bool(peers) and not board.state.pinned

    async def follow_board(node: DhtNode) -> None:
        """Probe (inside the DHT's loop: probes look for contacts) and follow the board."""
        async with trio.open_nursery() as inner:
            if dial_backs is not None:  # also without bootstrap peers: DHT contacts will come
                prober = _prober(board, dial_backs, node, host, bound, peers, dht.probe)
                inner.start_soon(prober.run)
            await follow_reachability(board, node, can_probe)

    config = DiscoveryConfig(
        host=host, port=dht.port, bootstrap=peers,
        advertised_address=f"{dht.advertise_host or host}:{bound}", state_dir=state_dir,
        resolve_address=None if dht.advertise_host else
        partial(_observed_address, peers, host, bound),
        start_as_client=dht_client_mode(board.state.udp, can_probe),
        dialback_sink=_sink(dial_backs, Kind.UDP),
    )
    services = [follow_board, *_relay_services(relaying, keys, peers, host, dht.advertise_host),
                *([run_updates] if service is not None else [])]
    node = await nursery.start(partial(serve_discovery, server, keys, config, services=services,
                                       board=board))
    write_atomic(state_dir / DHT_PORT_FILE, f"{node.port}\n".encode())
    dial_back_server = DialBackServer(DialBudget(), host=host)
    await nursery.start(serve_observer, host, node.port, dial_back_server.handle)
    print(f"dht node on {host}:{node.port}", file=sys.stderr, flush=True)


def _sink(dial_backs: DialBackInbox | None, kind: Kind) -> Callable[[bytes], None] | None:
    return None if dial_backs is None else dial_backs.sink(kind)


def reachability_board(mode: str) -> ReachabilityBoard:
    """The board for ``--reachability MODE`` (auto: unknown until probed)."""
    if mode == "auto":
        return ReachabilityBoard()
    return ReachabilityBoard(pinned(Reach(mode), f"--reachability {mode}"))


def _prober(board: ReachabilityBoard, dial_backs: DialBackInbox, node: DhtNode, host: str,
            bound: int, peers: Sequence[tuple[str, int]], config: ProbeConfig) -> Prober:
    """A prober asking the bootstrap peers and the DHT node's contacts (at their DHT ports)."""

    async def candidates() -> list[tuple[str, int]]:
        contacts = node.contact_addresses()
        if len(contacts) < 2 * config.per_round:  # few known: look for more (distinct /24s)
            contacts += await node.find_contacts()
        return probe_order(contacts, peers, rng)

    rng = random.Random()

    return Prober(board, ports={Kind.TCP: bound, Kind.UDP: node.port}, candidates=candidates,
                  exclude=[(host, node.port)], local=_local_address(host), config=config,
                  inbox=dial_backs, seed=rng.getrandbits(64))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["init"]:
        return main_init(args[1:])
    parser = _run_parser()
    options = parser.parse_args(args)
    try:
        config = ServerConfig(limits=port_limits(options.limit))
        relay = RelayOptions(enabled=not options.no_relay, port=options.relay_port,
                             limits=relay_limits(options.relay_limit),
                             static=tuple(f"{h}:{p}" for h, p in options.relays))
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    state_dir: Path = options.state
    if not (state_dir / STATE_FILE).exists():
        print(f"seattle-nodemanager: no node state in {state_dir}; run "
              f"'seattle-nodemanager init --state {state_dir} --spec SPEC.json' first", file=sys.stderr)
        return 2
    setup_logging(state_dir, options.verbose)
    raise_fd_limit(config.limits.max_connections + SPARE_FDS)
    peers = [f"{h}:{p}" for h, p in options.bootstrap]
    try:
        dht = DhtOptions(enabled=not options.no_dht, port=options.dht_port,
                         advertise_host=options.advertise_host, reachability=options.reachability,
                         probe=ProbeConfig(interval=options.reachability_interval))
        restart = trio.run(partial(run_daemon, ui=not options.no_ui), state_dir, options.listen[0],
                           options.listen[1], peers, not options.no_sandbox, dht, config,
                           _update_config(options), relay)
    except KeyboardInterrupt:
        return 0
    except (CoreError, StateError, OSError) as exc:
        log.error("cannot run: %s", exc)
        return 1
    return RESTART_CODE if restart else 0


def main_init(argv: Sequence[str]) -> int:
    options = _init_parser().parse_args(argv)
    return run_main("seattle-nodemanager init", lambda: _init(options), verbose=False,
                    failures=(NodeManagerError, StateError, CoreError))


def _init(options: argparse.Namespace) -> int:
    node = init_node(options.state, parse_spec(options.spec.read_text()))
    print(node.to_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
