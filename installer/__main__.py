"""``seattle-installer``: planners build custom installers; donors install, check, uninstall.

    seattle-installer genkey NAME [--dir DIR]
    seattle-installer build --planner-key P.privatekey --vessel PERCENT:OWNER[:USER,...] ...
                            [--pool PERCENT] --bootstrap HOST:PORT ... [--tuf-root ROOT]
                            -o BUNDLE[.pyz]
    seattle-installer grant --planner-key P.privatekey (--researcher KEY | --open [--work BITS])
                            --vessels N [--days D] -o NAME.grant
    seattle-installer revoke --planner-key P.privatekey SERIAL|NAME.grant ... --bootstrap HOST:PORT
                             [--list FILE] [--keep [SECONDS]]
    seattle-installer install BUNDLE [--prefix DIR] [--percent 10] [--port N] [--trust P.publickey]
                              [--no-service] [--dry-run]
    seattle-installer status [--prefix DIR]
    seattle-installer uninstall [--prefix DIR] [--purge] [--dry-run]
    seattle-installer pause [--for 2h] | resume | share PCT | policy [...] | ui
                              (the donor's controls: installer/donor/controls.py, docs/donor.md)
    seattle-installer release-init | release --version V | release-timestamp | publish
                              (signed updates: installer/release/commands.py, docs/updates.md)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from installer.donor.apply import apply_plan, observe, read_record
from installer.donor.controls import CONTROL_COMMANDS, add_control_parsers
from installer.donor.managed import (
    add_build_options,
    add_install_options,
    add_stage_parser,
    cmd_stage_update,
    managed_parts,
    open_pyz_source,
    write_self_contained,
)
from installer.donor.measure import measure_machine
from installer.donor.plan import InstallOptions, Layout, Step, plan_install, plan_uninstall, render_donation
from installer.donor.service import BootEntry, BootManager, ServiceChoice
from installer.donor.status import (
    NodeReport,
    bootstrap_warning,
    query_node,
    query_node_settled,
    render_donor,
    render_reachability,
    render_relays,
    render_updates,
    report_json,
)
from installer.errors import BundleError, InstallError, SpecError, UntrustedPlanner
from installer.planner.bundle import OpenedBundle, build_bundle, new_manifest, open_bundle
from installer.planner.grant import (
    DEFAULT_DAYS,
    DEFAULT_OPEN_WORK,
    make_grant,
    pool_share,
    render_pool,
)
from installer.planner.revoke import add_revoke_parser, cmd_revoke
from installer.planner.spec import check_bootstrap, complete_shares, key_from_text, parse_vessel_arg
from installer.release.commands import COMMANDS as RELEASE_COMMANDS
from installer.release.commands import add_release_parsers
from nodemanager.nat.relaycore import parse_limit
from seattlecore import (
    CliParser,
    CoreError,
    KeyPair,
    PublicKey,
    add_global_options,
    json_option,
    load_private,
    load_public,
    run_main,
    save_keypair,
    subparser,
    verbose_option,
    write_atomic,
)

log = logging.getLogger("installer")

PREFIX_ENV = "SEATTLE_PREFIX"


def default_prefix() -> Path:
    if os.environ.get(PREFIX_ENV):
        return Path(os.environ[PREFIX_ENV])
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "seattle-p2p"


def resolve_key(text: str) -> PublicKey:
    """A key as 64 hex digits, or the path of a ``.publickey`` file."""
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return key_from_text(text.lower())
    path = Path(text)
    if path.is_file():
        try:
            return load_public(path)
        except CoreError as exc:
            raise SpecError(f"bad public key file: {exc}") from exc
    if text and all(c in "0123456789abcdefABCDEF" for c in text):
        raise SpecError(f"{text!r} is not a key: a key is 64 hex digits ({len(text)} given) "
                        "or a .publickey file")
    if path.exists():
        raise SpecError(f"{text} is not a .publickey file")
    raise SpecError(f"no such key file: {text} (a key is 64 hex digits or a .publickey file; "
                    "make a key pair with 'seattle-installer genkey NAME')")


# ---- commands ----------------------------------------------------------------------------------

def cmd_genkey(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if (directory / f"{args.name}.privatekey").exists():
        raise InstallError(f"{directory / args.name}.privatekey exists; not overwriting it")
    public, private = save_keypair(directory, args.name, KeyPair.generate())
    print(f"wrote {public} and {private}")
    return 0


def _planner_key(path: Path) -> KeyPair:
    try:
        return load_private(path)
    except CoreError as exc:
        raise SpecError(f"--planner-key: {exc}") from exc


def cmd_build(args: argparse.Namespace) -> int:
    planner = _planner_key(args.planner_key)
    shares = [parse_vessel_arg(text, resolve_key) for text in args.vessel]
    if args.pool:
        shares.append(pool_share(args.pool, planner.public))
    reserved = resolve_key(args.reserved_owner) if args.reserved_owner else planner.public
    manifest = new_manifest(planner.public, complete_shares(shares, reserved),
                            check_bootstrap(args.bootstrap), now=time.time())
    try:
        if args.output.suffix == ".pyz":
            size = write_self_contained(args, manifest, planner)
        else:
            size = len(data := build_bundle(manifest, planner))
            write_atomic(args.output, data)
    except OSError as exc:
        raise InstallError(f"cannot write {args.output}: {exc.strerror}") from exc
    print(f"wrote {args.output} ({size} bytes), build {manifest.build_id}, "
          f"planner {planner.public.to_text()}")
    for i, share in enumerate(manifest.vessels, 1):
        users = ", ".join(u.short() for u in share.users) or "-"
        print(f"  v{i}: {share.percent:>3} %  owner {share.owner.short()}  users {users}"
              + ("  (reserved)" if share.reserved else "")
              + ("  (community pool: 'seattle-installer grant' admits researchers)"
                 if share.pool else ""))
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    planner = _planner_key(args.planner_key)
    researcher = None if args.researcher is None else resolve_key(args.researcher)
    work = (DEFAULT_OPEN_WORK if args.work is None else args.work) if args.open else 0
    if args.work is not None and not args.open:
        raise SpecError("--work is for an open pool (--open)")
    cred, blob = make_grant(planner, researcher, vessels=args.vessels, days=args.days,
                            now=time.time(), work=work)
    try:
        write_atomic(args.output, blob, 0o600)
    except OSError as exc:
        raise InstallError(f"cannot write {args.output}: {exc.strerror}") from exc
    who = (f"any key (open pool, proof of work of {work} bits per acquisition)"
           if researcher is None else f"researcher {researcher.short()}")
    print(f"wrote {args.output}: {who} may hold {cred.vessels} "
          f"vessels of pool {planner.public.short()} for {args.days:g} days "
          f"(serial {cred.serial}); in seash: loadgrant {args.output.name}")
    return 0


def _guess_address(bootstrap: Sequence[str]) -> str:
    """The local address that routes to the first bootstrap peer (no packet is sent)."""
    host = bootstrap[0].rpartition(":")[0].strip("[]")
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))
        return str(probe.getsockname()[0])
    return "127.0.0.1"


def _boot(args: argparse.Namespace) -> BootManager:
    return BootManager.from_env(args.crontab_cmd, args.systemd_dir)


def cmd_install(args: argparse.Namespace) -> int:
    prefix: Path = args.prefix.absolute()
    if not args.bundle.is_file():
        reason = "not a file" if args.bundle.exists() else "no such file"
        raise InstallError(f"cannot read bundle {args.bundle}: {reason}")
    trust = resolve_key(str(args.trust)) if args.trust else None
    pyz = open_pyz_source(args.bundle, trust, prefix)
    if pyz is None:
        try:
            data = args.bundle.read_bytes()
        except OSError as exc:
            raise InstallError(f"cannot read {args.bundle}: {exc.strerror}") from exc
    bundle = pyz.bundle if pyz is not None else _open_trusted(data, trust, args.trust)
    if trust is None:
        print(f"note: bundle signed by planner {bundle.manifest.planner.to_text()}; not checked "
              "against a known key (pass --trust PLANNER.publickey to pin it)", file=sys.stderr)
    advertise = args.advertise_host
    if advertise is None and args.host in ("0.0.0.0", "::"):
        advertise = _guess_address(bundle.manifest.bootstrap)
    options = InstallOptions(prefix=prefix, percent=args.percent, host=args.host, port=args.port,
                             dht_port=args.dht_port, advertise_host=advertise,
                             sandbox=not args.no_sandbox, python=sys.executable,
                             relay=not args.no_relay, relay_limits=tuple(args.relay_limit))
    software: list[Step] = []
    if pyz is not None:
        options, software = managed_parts(pyz, options, args.update_interval)
    manager = _boot(args)
    choice: ServiceChoice = "none" if args.no_service else args.service
    boot = manager.choose(choice, Layout(prefix=prefix).script)
    plan = plan_install(bundle, measure_machine(prefix), options,
                        observe(prefix, boot, manager), boot, software)
    print(plan.render())
    if args.dry_run:
        print("(dry run: nothing changed)")
        return 0
    apply_plan(plan, manager)
    pid = Layout(prefix=prefix).pid.read_text().strip()
    print(f"installed in {prefix}; node manager running (pid {pid})")
    _warn_if_alone(prefix, bundle.manifest.bootstrap)
    return 0


def _open_trusted(data: bytes, trust: PublicKey | None, given: str | None) -> OpenedBundle:
    """``open_bundle``; a ``--trust`` file that is the planner's *private* key is named as such."""
    try:
        return open_bundle(data, trust=trust)
    except UntrustedPlanner as exc:
        signer = open_bundle(data, trust=None).manifest.planner
        if given is not None and _private_key_of(Path(given)) == signer:
            raise BundleError(f"--trust {given} holds the planner's private key, not its public "
                              "key: pass PLANNER.publickey (and keep the private key secret)") from exc
        raise


def _private_key_of(path: Path) -> PublicKey | None:
    """The public half of ``path`` read as a private key file (None if it is not one)."""
    with contextlib.suppress(OSError, ValueError, CoreError):
        return KeyPair(bytes.fromhex(path.read_text().strip())).public
    return None


def _warn_if_alone(prefix: Path, bootstrap: Sequence[str]) -> None:
    """A loud warning on stderr when the node's DHT node found no peer."""
    report = trio.run(query_node_settled, Layout(prefix=prefix).state)
    warning = bootstrap_warning(report, bootstrap)
    if warning:
        print(warning, file=sys.stderr)


def _recorded_boot(prefix: Path, manager: BootManager) -> BootEntry:
    record = read_record(prefix) or {}
    kind = record.get("service", "none")
    script = Layout(prefix=prefix).script
    if kind == "cron":
        return BootEntry(kind="cron", script=script)
    if kind == "systemd":
        return BootEntry(kind="systemd", script=script)
    return BootEntry(kind="none", script=script, note="none was added at install")


def cmd_uninstall(args: argparse.Namespace) -> int:
    prefix: Path = args.prefix.absolute()
    manager = _boot(args)
    boot = _recorded_boot(prefix, manager)
    current = observe(prefix, boot, manager)
    if current.record is None and current.running_pid is None:
        print(f"nothing installed in {prefix}; nothing to do")
        return 0
    plan = plan_uninstall(prefix, current, boot, purge=args.purge)
    print(plan.render())
    if args.dry_run:
        print("(dry run: nothing changed)")
        return 0
    apply_plan(plan, manager)
    print("uninstalled" + (" and deleted all files" if args.purge else
                           f"; files kept in {prefix} (delete them with 'seattle-installer "
                           f"uninstall --purge --prefix {shlex.quote(str(prefix))}')"))
    return 0


def render_port(limits: Mapping[str, float], counters: Mapping[str, int]) -> str:
    """One line on the node manager's connections against its limits (protocol.md §10)."""
    return (f"connections: {counters.get('connections')} of {limits.get('max_connections')} "
            f"({counters.get('trusted')} trusted, {limits.get('reserved_connections')} slots "
            f"reserved for them); public per address {limits.get('per_address')}, per prefix "
            f"{limits.get('per_prefix')}; since start: {counters.get('evicted_total')} evicted, "
            f"{counters.get('shed_total')} shed, {counters.get('refused_total')} refused, "
            f"{counters.get('delayed_total')} requests paced")


def render_report(report: NodeReport) -> str:
    if report.node_key is None:
        return f"node manager: not answering ({report.error})"
    lines = [f"node key {report.node_key}", f"node manager on port {report.port}, DHT on "
             f"UDP {report.dht_port}, {report.dht_peers if report.dht_peers is not None else '?'} "
             "DHT peers"]
    for vessel in report.vessels:
        users = ", ".join(u[:8] for u in vessel.users) or "-"
        lines.append(f"  {vessel.name:<5} {vessel.status:<11} owner {vessel.owner[:8]}  users {users}"
                     + ("" if vessel.advertise else "  (not advertised)"))
    lines.append("advertised keys: " + ", ".join(k[:16] for k in report.advertised_keys))
    if report.port_limits and report.port_counters:
        lines.append(render_port(report.port_limits, report.port_counters))
    lines += render_donor(report)
    lines += render_reachability(report)
    lines += render_updates(report)
    lines += render_relays(report)
    lines += render_pool(report.pool, time.time())
    if report.error:
        lines.append(f"warning: {report.error}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    prefix: Path = args.prefix.absolute()
    manager = _boot(args)
    boot = _recorded_boot(prefix, manager)
    current = observe(prefix, boot, manager)
    report = (trio.run(query_node, Layout(prefix=prefix).state)
              if current.record is not None and current.running_pid is not None else None)
    warning = (bootstrap_warning(report, current.record.get("bootstrap", []))
               if report is not None and current.record is not None else None)
    if args.json:
        print(json.dumps({
            "prefix": str(prefix), "installed": current.record is not None,
            "donation": current.record, "boot_entry": boot.describe() if current.boot_entry else None,
            "running_pid": current.running_pid,
            "node": report_json(report) if report is not None else None, "warning": warning,
        }, default=str))
        return 0 if report is not None else 1
    if current.record is None:
        print(f"not installed in {prefix}")
        return 1
    print(render_donation(current.record))
    print(f"start at boot: {boot.describe() if current.boot_entry else 'no entry'}")
    if report is None:
        print("node manager: NOT running" + ("" if current.record.get("active", True)
                                              else " (uninstalled)"))
        return 1
    print(f"node manager: running, pid {current.running_pid}")
    print(render_report(report))
    if warning:
        print(warning, file=sys.stderr)
    return 0


# ---- argument parsing ----------------------------------------------------------------------

def _relay_limit(text: str) -> str:
    try:
        parse_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _percent(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 100:
        raise argparse.ArgumentTypeError(f"percent must be a whole number 1..100, got {text!r}")
    return int(text)


def _boot_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", type=Path, default=default_prefix(),
                        help=f"install directory (default ${PREFIX_ENV} or ~/.local/share/seattle-p2p)")
    parser.add_argument("--crontab-cmd", default=None,
                        help="crontab command to use (default $SEATTLE_CRONTAB or 'crontab')")
    parser.add_argument("--systemd-dir", type=Path, default=None,
                        help="systemd user unit directory (default ~/.config/systemd/user)")


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="seattle-installer", description=__doc__.split("\n")[0],
                       epilog="exit status: 0 ok, 1 failure, 2 bad usage")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    genkey = subparser(sub, "genkey", help="create NAME.publickey/.privatekey",
                       description="create a key pair NAME.publickey / NAME.privatekey")
    genkey.add_argument("name", metavar="NAME", help="file name stem of the two key files")
    genkey.add_argument("--dir", type=Path, default=Path("."), help="directory (default .)")
    _build_options(subparser(sub, "build", help="planner: build a signed custom installer bundle",
                             description="planner: build a signed custom installer bundle"))
    _grant_options(subparser(sub, "grant", help="planner: admit a researcher to the pool",
                             description="planner: sign a researcher's membership credential "
                                         "for the community pool (docs/pool.md)"))
    add_revoke_parser(sub, subparser)
    _install_options(subparser(sub, "install", help="donor: install a bundle and start the node",
                               description="donor: install a bundle, start the node manager "
                                           "and add a start-at-boot entry"))
    status = subparser(sub, "status", help="is the node running? vessels, keys, DHT peers",
                       description="is the node running? its vessels, keys and DHT peers")
    _boot_options(status)
    uninstall = subparser(sub, "uninstall", help="stop the node and remove the boot entry",
                          description="stop the node and remove the boot entry (files are kept "
                                      "unless --purge); harmless where nothing is installed")
    _boot_options(uninstall)
    uninstall.add_argument("--purge", action="store_true", help="also delete the prefix")
    uninstall.add_argument("--dry-run", action="store_true", help="print the plan only")
    add_control_parsers(sub, _boot_options, subparser, _percent)
    add_stage_parser(sub)
    add_release_parsers(sub)
    add_global_options(parser, sub.choices.values(), [verbose_option()])
    add_global_options(parser, [status], [json_option()])
    return parser


def _build_options(build: argparse.ArgumentParser) -> None:
    build.add_argument("--planner-key", type=Path, required=True, metavar="NAME.privatekey",
                       help="the planner's private key, which signs the bundle")
    build.add_argument("--vessel", action="append", default=[], metavar="PERCENT:OWNER[:USER,...]",
                       help="a vessel of PERCENT (10 %% steps) of the donation for OWNER, used "
                            "also by USERs; keys as 64 hex or NAME.publickey (repeatable)")
    build.add_argument("--pool", type=_percent, default=0, metavar="PERCENT",
                       help="give PERCENT (10 %% steps) of the donation to the community pool "
                            "named by the planner key (docs/pool.md)")
    build.add_argument("--bootstrap", action="append", default=[], metavar="HOST:PORT",
                       help="DHT peer the node joins through (repeatable, at least one)")
    build.add_argument("--reserved-owner", default=None, metavar="KEY",
                       help="owner of the unassigned remainder (default: the planner)")
    build.add_argument("-o", "--output", type=Path, required=True, metavar="BUNDLE",
                       help="where to write the bundle: NAME.pyz for a self-contained installer "
                            "(wheels inside, docs/updates.md), else a manifest-only .tgz")
    add_build_options(build)


def _grant_options(grant: argparse.ArgumentParser) -> None:
    grant.add_argument("--planner-key", type=Path, required=True, metavar="NAME.privatekey",
                       help="the planner's private key (the pool is named by its public key)")
    grant.add_argument("--researcher", default=None, metavar="KEY",
                       help="the researcher's public key: 64 hex or NAME.publickey")
    grant.add_argument("--open", action="store_true",
                       help="open the pool to any key instead (give --vessels small: per key)")
    grant.add_argument("--work", type=int, default=None, metavar="BITS",
                       help=f"open pool: proof of work per acquisition, in leading zero bits "
                            f"(default {DEFAULT_OPEN_WORK}; docs/pool.md gives seconds per bit)")
    grant.add_argument("--vessels", type=int, required=True, metavar="N",
                       help="how many vessels the researcher may hold at once in the pool")
    grant.add_argument("--days", type=float, default=DEFAULT_DAYS, metavar="D",
                       help=f"how long the credential is valid (default {DEFAULT_DAYS:g}; short "
                            "lifetimes are how membership ends: docs/pool.md)")
    grant.add_argument("-o", "--output", type=Path, required=True, metavar="NAME.grant",
                       help="where to write the credential")


def _install_options(install: argparse.ArgumentParser) -> None:
    install.add_argument("bundle", type=Path, metavar="BUNDLE", help="the planner's bundle")
    _boot_options(install)
    install.add_argument("--percent", type=_percent, default=10, help="share to donate (default 10)")
    install.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    install.add_argument("--port", type=int, default=0, help="node manager TCP port (0: any)")
    install.add_argument("--dht-port", type=int, default=0, help="DHT UDP port (0: any)")
    install.add_argument("--advertise-host", default=None, metavar="HOST",
                         help="address put in adverts (default: the one routing to the bootstrap)")
    install.add_argument("--no-relay", action="store_true",
                         help="do not relay for donors behind NAT (docs/nat.md)")
    install.add_argument("--relay-limit", action="append", default=[], metavar="NAME=VALUE",
                         type=_relay_limit, help="a relay limit, e.g. max_reservations=32")
    install.add_argument("--trust", default=None, metavar="PLANNER.publickey",
                         help="accept only bundles signed by this planner")
    install.add_argument("--service", choices=["auto", "systemd", "cron", "none"], default="auto",
                         help="how the node starts at boot (default auto)")
    install.add_argument("--no-service", action="store_true", help="no start-at-boot entry")
    install.add_argument("--no-sandbox", action="store_true", help="node runs no programs")
    install.add_argument("--dry-run", action="store_true", help="print the plan only")
    add_install_options(install)


COMMANDS = {"genkey": cmd_genkey, "build": cmd_build, "grant": cmd_grant, "install": cmd_install,
            "revoke": cmd_revoke, "status": cmd_status, "uninstall": cmd_uninstall,
            "stage-update": cmd_stage_update,
            **CONTROL_COMMANDS, **RELEASE_COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.json and args.command != "status":
        parser.error(f"--json is for 'status', not '{args.command}'")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_main("seattle-installer", lambda: COMMANDS[args.command](args), verbose=args.verbose,
                    usage=(SpecError,), failures=(InstallError,))


if __name__ == "__main__":
    sys.exit(main())
