"""The command tree: every seash command, its arguments, help text and handler.

Handlers live in one module per topic: ``identities``, ``discovery``, ``groups``, ``files``,
``programs``, ``vessels`` (information), ``owner`` (changes, split, join) and ``settings``.
Each is ``async def (ex: Executor, args: Args) -> None``: it reads and updates ``ex.session``,
talks to nodes only through ``ex.fan`` (client.py), and writes only through ``ex.reporter``.
"""

from __future__ import annotations

from nodemanager import NodeClient
from seash import (
    discovery,
    files,
    groups,
    identities,
    leases,
    logs,
    owner,
    programs,
    settings,
    vessels,
)
from seash.commands import Arg, Args, Command, Option, help_text
from seash.executor import Executor
from seash.owner import change_handler


async def help_cmd(ex: Executor, args: Args) -> None:
    ex.reporter.text(help_text(ex.root, args.many("command")))


async def exit_cmd(ex: Executor, args: Args) -> None:
    ex.exiting = True


SET_HELP = """change vessels (owner only) or session settings, or define a variable

'set NAME VALUE...' (NAME not a setting below) defines a variable: the words of VALUE joined
by a space ("" for empty). '$NAME' or '${NAME}' in any later command line, outside single
quotes, is replaced by the value, which always stays one word: it is never split at spaces
nor read again for ';', '#', quotes or '$', and an undefined variable is an error. A literal
dollar sign: '$$', '\\$' or '$' in single quotes. 'show variables' lists them, 'unset NAME'
removes one; savestate and autosave keep them. Example: set prog ping.r2py; run $prog"""

AUTOSAVE_HELP = """on: save the session after each command, restore it when seash starts

The session (identities with their private keys, known vessels, groups, target, variables,
settings) goes to autosave.json in the keys dir (--home), mode 0600, written atomically
after every command. 'off' deletes the file, so the next start is fresh. A damaged file is
moved to autosave.json.corrupt with a warning, and seash starts fresh."""

UPLOADDIR_HELP = """upload every regular file of local DIRECTORY to each target

Each file keeps its name. Subdirectories, symbolic links leading out of DIRECTORY, other
special files and names a vessel refuses (a-z 0-9 . _ -, no leading dot, no 'private_')
stop the command before anything is sent; --skip uploads the rest and lists them. Each
vessel's disk limit is checked first (size + 4096 bytes per file): a vessel that cannot
hold them all gets none. A failure part-way says which files did arrive."""

HOSTNAME_HELP = """reverse DNS name of each target vessel's node address

Addresses without a name show '(no name)'. Lookups run in parallel, each within
3 s (or the timeout setting when smaller), so a dead resolver cannot hang the shell."""

TARGET = Arg("target", "target")
COMMAND = Arg("command", "command", optional=True, many=True)
ALIAS = Arg("alias", "word", optional=True, keyword="as")
TO_FILE = Arg("file", "path", optional=True, keyword="to")

SHOW = Command("show", help="show shell state or live vessel information", children=(
    Command("identities", "loaded identities (* = current)", identities.show_identities,
            aliases=("identity",)),
    Command("keys", "full public keys of the loaded identities", identities.show_keys, aliases=("key",)),
    Command("targets", "known vessels and their %N ids", discovery.show_targets, aliases=("target",)),
    Command("groups", "groups and their members", groups.show_groups, aliases=("group",)),
    Command("files", "ListFilesInVessel on each target", files.show_files, aliases=("file",)),
    Command("log", "ReadVesselLog on each target ('to FILE': write FILE.<host>_<port>_<vessel>)",
            logs.show_log, (TO_FILE,), options=(
        Option("--follow", help="print new output until every program has ended (or Ctrl-C)"),
        Option("--for", "SECONDS", help="follow for at most SECONDS (for scripts)"))),
    Command("resources", "GetVesselResources on each target", vessels.show_resources,
            aliases=("resource",)),
    Command("offcut", "GetOffcutResources on each node of the target", vessels.show_offcut),
    Command("info", "cached vessel information (refresh with 'list' or 'update')", vessels.show_info),
    Command("users", "cached user keys of each target", vessels.show_users, aliases=("user",)),
    Command("owner", "cached owner key of each target", vessels.show_owner),
    Command("ownerinfo", "cached owner information string", vessels.show_ownerinfo),
    Command("advertise", "cached advertise flag", vessels.show_advertise),
    Command("ip", "node addresses of the target ('to FILE': write them to FILE)", vessels.show_ip,
            (TO_FILE,)),
    Command("hostname", HOSTNAME_HELP, discovery.show_hostname, aliases=("hostnames",)),
    Command("variables", "variables defined with 'set NAME VALUE' (long values cut short)",
            settings.show_variables, aliases=("variable", "vars")),
    Command("leases", "pool leases of the known vessels and their time left",
            leases.show_leases, aliases=("lease",)),
    Command("timeout", "session settings", settings.show_settings,
            aliases=("uploadrate", "settings", "bootstrap")),
))

SET = Command("set", SET_HELP, settings.set_variable,
              (Arg("name", "word"), Arg("value", "text", many=True)), children=(
    Command("owner", "ChangeOwner: give the targets to IDENTITY (a name or 64 hex)",
            change_handler(owner.SET_OWNER), (Arg("identity", "identity"),)),
    Command("users", "ChangeUsers: replace the user list", change_handler(owner.SET_USERS),
            (Arg("identity", "identity", many=True),), aliases=("user",)),
    Command("ownerinfo", "ChangeOwnerInformation", change_handler(owner.SET_OWNERINFO),
            (Arg("text", "text", many=True, optional=True),)),
    Command("advertise", "ChangeAdvertise on|off", change_handler(owner.SET_ADVERTISE),
            (Arg("flag", "bool"),)),
    Command("timeout", "per-node deadline in seconds", settings.set_timeout, (Arg("seconds", "number"),)),
    Command("uploadrate", "bytes/s assumed for uploads (larger files get longer deadlines)",
            settings.set_uploadrate, (Arg("rate", "number"),)),
    Command("concurrency", "how many node managers to contact at once", settings.set_concurrency,
            (Arg("count", "number"),)),
    Command("bootstrap", "DHT bootstrap peers for browse", settings.set_bootstrap,
            (Arg("address", "hostport", many=True),)),
    Command("variable", "define variable NAME even if it looks like a setting's name",
            settings.define_variable, (Arg("name", "word"), Arg("value", "text", many=True)),
            aliases=("var",)),
    Command("autosave", AUTOSAVE_HELP, settings.set_autosave, (Arg("flag", "bool"),)),
))

TREE = Command("", children=(
    Command("genkeys", "generate an Ed25519 key pair NAME.publickey/.privatekey in the keys dir",
            identities.genkeys, (Arg("name", "keyname"), ALIAS)),
    Command("loadkeys", "load NAME.publickey and NAME.privatekey", identities.loadkeys,
            (Arg("name", "keyname"), ALIAS)),
    Command("loadpub", "load a public key file (an identity that cannot sign)", identities.loadpub,
            (Arg("file", "keyname"), ALIAS)),
    Command("loadpriv", "load a private key file", identities.loadpriv, (Arg("file", "keyname"), ALIAS)),
    Command("as", "use identity NAME (for one COMMAND, or from now on)", identities.as_identity,
            (Arg("name", "identity"), COMMAND)),
    Command("on", "use TARGET: %N, %all, a group or host:port:vessel (for one COMMAND or from now on)",
            identities.on_target, (TARGET, COMMAND)),
    Command("browse", "find your vessels: DHT lookup of your key, then GetVessels on each node",
            discovery.browse),
    Command("contact", "add the usable vessels of one node manager HOST:PORT[:VESSEL]", discovery.contact,
            (Arg("address", "hostport"),)),
    Command("list", "GetVessels: status of each target (* = you own it)", discovery.list_vessels),
    Command("loadgrant", "load a pool credential FILE (a relative one not here: from --home) "
            "for the current identity (docs/pool.md)",
            leases.loadgrant, (Arg("file", "path"),)),
    Command("get", "lease N free pool vessels [public|nat|any] (--spread: distinct /24s first)",
            leases.get, (Arg("count", "number"), Arg("kind", optional=True),
                         Arg("group", "word", optional=True, keyword="as")),
            options=(Option("--spread", help="prefer vessels on distinct /24 networks"),)),
    Command("renew", "RenewLease on the leased vessels of TARGET (default: current target)",
            leases.renew, (Arg("target", "target", optional=True),)),
    Command("release", "ReleaseVessel: give the leased vessels of TARGET back to the pool",
            leases.release, (Arg("target", "target", optional=True),)),
    Command("update", "refresh vessel information without printing it", discovery.update),
    Command("add", "add TARGET (default: current target) to GROUP", groups.add,
            (Arg("target", "target", optional=True), Arg("group", "group", keyword="to"))),
    Command("remove", "remove TARGET from GROUP (no TARGET: delete the group)", groups.remove,
            (Arg("target", "target", optional=True),
             Arg("group", "group", optional=True, keyword="from"))),
    Command("move", "move TARGET from the current group to GROUP", groups.move,
            (TARGET, Arg("group", "group", keyword="to"))),
    Command("upload", "AddFileToVessel: copy local FILE into each target (as REMOTE)", files.upload,
            (Arg("file", "path"), Arg("remote", optional=True))),
    Command("uploaddir", UPLOADDIR_HELP, files.uploaddir, (Arg("directory", "path"),), options=(
        Option("--skip", help="upload the files that can be, list the entries that cannot"),)),
    Command("download", "RetrieveFileFromVessel into LOCAL.<host>_<port>_<vessel>", files.download,
            (Arg("remote"), Arg("local", "path", optional=True))),
    Command("cat", "print a vessel file", files.cat, (Arg("remote"),)),
    Command("delete", "DeleteFileInVessel", files.delete, (Arg("remote"),)),
    Command("start", "StartVessel: run PROGRAM (already uploaded) with ARGS", programs.start,
            (Arg("program"), Arg("args", optional=True, many=True))),
    Command("run", "upload local PROGRAM, then start it with ARGS", programs.run,
            (Arg("program", "path"), Arg("args", optional=True, many=True))),
    Command("stop", "StopVessel (a vessel with nothing running is fine)", programs.stop),
    Command("reset", "ResetVessel: stop, delete files, clear the log", programs.vessel_command(
        "reset", NodeClient.reset_vessel, "reset")),
    Command("wait", "wait until no target's program runs; fails for programs that failed",
            programs.wait, options=(
                Option("--for", "SECONDS", help="wait at most SECONDS (still running: timeout)"),)),
    Command("split", "SplitVessel: cut RESOURCEFILE's resources off each target (groups split1/2)",
            owner.split, (Arg("resourcefile", "path"),)),
    Command("join", "JoinVessels: merge the target's vessels on each node into one", owner.join),
    SHOW,
    SET,
    Command("unset", "remove variables NAME... (all must be defined)", settings.unset_variable,
            (Arg("name", "word", many=True),)),
    Command("savestate", "save the session (keys included) encrypted with a passphrase",
            settings.savestate, (Arg("file", "path"),)),
    Command("loadstate", "restore a session saved by savestate", settings.loadstate,
            (Arg("file", "path"),)),
    Command("help", "help [COMMAND...]", help_cmd,
            (Arg("command", "command", optional=True, many=True),)),
    Command("exit", "leave the shell", exit_cmd, aliases=("quit",)),
))
