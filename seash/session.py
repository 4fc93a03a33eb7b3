"""The shell's state: identities, known vessels (``%N``), groups and settings (pure).

Invariants:
  * A vessel is known once, by its address ``host:port:vessel``; its ``%N`` id never changes
    and is never reused within a session (nor across ``savestate``/``loadstate``).
  * Groups hold vessel ids in insertion order; a forgotten vessel leaves every group.
  * ``%all`` and ``%N`` are implicit groups; they cannot be created or edited.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nodemanager import VesselInfo
from seash.errors import IdentityError, UnknownTarget, UsageError
from seash.parse import (
    MAX_VARIABLE_VALUE,
    MAX_VARIABLES,
    check_variable_name,
    parse_vessel_address,
)
from seattlecore import KeyFormatError, KeyPair, PublicKey

ALL = "%all"


@dataclass(frozen=True, slots=True)
class Identity:
    """A named key: the public half always, the private half when loaded."""

    name: str
    public: PublicKey
    private: KeyPair | None = None


@dataclass(frozen=True, slots=True)
class VesselRef:
    """Where a vessel lives; ``node_key`` pins the node once known (from the DHT or TOFU)."""

    host: str
    port: int
    vessel: str
    node_key: PublicKey | None = None

    @property
    def node(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}:{self.vessel}"


@dataclass(slots=True)
class Settings:
    """Tunable session settings (``set timeout``, ``set uploadrate``, ...)."""

    timeout: float = 10.0
    """Per-node deadline in seconds for one request."""
    uploadrate: float = 1_000_000.0
    """Assumed slowest upload rate in bytes/s; an upload's deadline grows to size / rate."""
    concurrency: int = 64
    """How many node managers are contacted at the same time."""
    bootstrap: list[tuple[str, int]] = field(default_factory=list)
    """DHT bootstrap peers for ``browse``."""
    autosave: bool = False
    """Save the session to the keys dir after each command, restore it at start."""


def _check_group_name(name: str) -> None:
    if not name or name.startswith("%") or ":" in name or not name.isprintable() or " " in name:
        raise UsageError(f"{name!r} cannot be a group name (no '%', ':' or spaces)")


class Session:
    """All state of one shell session; every method is synchronous and side-effect free."""

    def __init__(self) -> None:
        self.identities: dict[str, Identity] = {}
        self.current: str | None = None
        self.vessels: dict[int, VesselRef] = {}
        self.info: dict[int, VesselInfo] = {}
        self.groups: dict[str, list[int]] = {}
        self.target: str = ALL
        self.settings = Settings()
        self._next_id = 1
        self.grants: dict[str, bytes] = {}
        """Pool credentials by identity name (``loadgrant``; docs/pool.md)."""
        self.leases: dict[str, float] = {}
        """Lease deadlines (wall clock) by vessel address ``host:port:vessel``."""
        self.variables: dict[str, str] = {}
        """``set NAME VALUE``; expanded as ``$NAME`` in every command line (parse.py)."""

    # ---- identities ----

    def add_identity(self, identity: Identity, *, make_current: bool = True) -> None:
        old = self.identities.get(identity.name)
        if old is not None and old.public != identity.public:
            raise IdentityError(f"identity {identity.name!r} already holds a different key")
        if old is not None and identity.private is None:
            identity = Identity(identity.name, identity.public, old.private)
        self.identities[identity.name] = identity
        if make_current or self.current is None:
            self.current = identity.name

    def identity(self, name: str | None = None) -> Identity:
        """The named (default: current) identity."""
        key = self.current if name is None else name
        if key is None:
            raise IdentityError("no identity loaded: use 'genkeys NAME' or 'loadkeys NAME'")
        try:
            return self.identities[key]
        except KeyError:
            known = ", ".join(sorted(self.identities)) or "none"
            raise IdentityError(f"unknown identity {key!r} (loaded: {known})") from None

    def signing_key(self, name: str | None = None) -> KeyPair:
        identity = self.identity(name)
        if identity.private is None:
            raise IdentityError(f"identity {identity.name!r} has no private key: use 'loadpriv'")
        return identity.private

    def public_key(self, text: str) -> PublicKey:
        """An identity name or a 64-hex public key."""
        if text in self.identities:
            return self.identities[text].public
        try:
            return PublicKey.from_text(text)
        except KeyFormatError:
            raise IdentityError(f"{text!r} is neither a loaded identity nor a public key") from None

    # ---- vessels ----

    def add_vessel(self, ref: VesselRef, info: VesselInfo | None = None) -> int:
        """Remember a vessel (or refresh it); return its id."""
        for number, known in self.vessels.items():
            if known.address == ref.address:
                if ref.node_key is not None:
                    self.vessels[number] = ref
                if info is not None:
                    self.info[number] = info
                return number
        number = self._next_id
        self._next_id += 1
        self.vessels[number] = ref
        if info is not None:
            self.info[number] = info
        return number

    def forget_vessel(self, number: int) -> None:
        ref = self.vessels.get(number)
        if ref is not None:
            self.leases.pop(ref.address, None)
        self.vessels.pop(number, None)
        self.info.pop(number, None)
        for members in self.groups.values():
            if number in members:
                members.remove(number)

    def vessel_ids_on(self, node: tuple[str, int]) -> list[int]:
        return [n for n, ref in self.vessels.items() if ref.node == node]

    def label(self, number: int) -> str:
        return f"%{number}"

    # ---- targets and groups ----

    def resolve(self, target: str | None = None) -> list[int]:
        """Vessel ids of a target: ``%all``, ``%N``, a group, or ``host:port:vessel``."""
        name = self.target if target is None else target
        if name == ALL:
            return sorted(self.vessels)
        if name.startswith("%"):
            digits = name[1:]
            if digits.isdigit() and int(digits) in self.vessels:
                return [int(digits)]
            raise UnknownTarget(f"no vessel {name} (see 'show targets')")
        if name in self.groups:
            return list(self.groups[name])
        if name.count(":") >= 2:
            address = "{}:{}:{}".format(*parse_vessel_address(name))
            for number, ref in self.vessels.items():
                if ref.address == address:
                    return [number]
        raise UnknownTarget(f"no vessel or group named {name!r} (see 'show targets', 'show groups')")

    def target_names(self) -> list[str]:
        """Every name a target argument may take (for completion)."""
        return [ALL, *(f"%{n}" for n in sorted(self.vessels)), *sorted(self.groups)]

    def set_group(self, name: str, ids: Iterable[int]) -> None:
        _check_group_name(name)
        self.groups[name] = list(dict.fromkeys(ids))

    def add_to_group(self, name: str, ids: Iterable[int]) -> None:
        _check_group_name(name)
        members = self.groups.setdefault(name, [])
        members.extend(n for n in ids if n not in members)

    def remove_from_group(self, name: str, ids: Iterable[int]) -> None:
        if name not in self.groups:
            raise UnknownTarget(f"no group named {name!r}")
        drop = set(ids)
        self.groups[name] = [n for n in self.groups[name] if n not in drop]

    def delete_group(self, name: str) -> None:
        if self.groups.pop(name, None) is None:
            raise UnknownTarget(f"no group named {name!r}")

    def record_outcome(self, command: str, good: Iterable[int], failed: Iterable[int]) -> None:
        """Set the ``<command>good`` / ``<command>fail`` groups after a fan-out."""
        self.groups[f"{command}good"] = list(dict.fromkeys(good))
        self.groups[f"{command}fail"] = list(dict.fromkeys(failed))

    def use(self, *, identity: str | None = None, target: str | None = None) -> None:
        """Make ``identity`` and/or ``target`` current (``as NAME``, ``on TARGET``)."""
        if identity is not None:
            self.current = identity
        if target is not None:
            self.target = target

    @contextmanager
    def using(self, *, identity: str | None = None, target: str | None = None) -> Iterator[None]:
        """Use ``identity`` and/or ``target`` for the duration of the block (``as``/``on``)."""
        saved = self.current, self.target
        self.use(identity=identity, target=target)
        try:
            yield
        finally:
            self.current, self.target = saved

    def prompt(self) -> str:
        """Seattle's prompt: ``identity@target !> ``."""
        return f"{self.current or ''}@{self.target} !> "

    # ---- persistence (savestate/loadstate) ----

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "identities": [
                {"name": i.name, "public": i.public.to_text(),
                 "private": None if i.private is None else i.private.seed.hex()}
                for i in self.identities.values()],
            "current": self.current,
            "vessels": [
                {"id": n, "host": r.host, "port": r.port, "vessel": r.vessel,
                 "node_key": None if r.node_key is None else r.node_key.to_text()}
                for n, r in self.vessels.items()],
            "groups": self.groups,
            "target": self.target,
            "next_id": self._next_id,
            "grants": {name: blob.hex() for name, blob in self.grants.items()},
            "leases": dict(self.leases),
            "variables": dict(self.variables),
            "settings": {"timeout": self.settings.timeout, "uploadrate": self.settings.uploadrate,
                         "concurrency": self.settings.concurrency,
                         "bootstrap": [f"{h}:{p}" for h, p in self.settings.bootstrap],
                         "autosave": self.settings.autosave},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Session:
        """Inverse of ``to_dict``; raises KeyError/ValueError/TypeError on bad shapes."""
        session = cls()
        for raw in data["identities"]:
            private = None if raw["private"] is None else KeyPair(bytes.fromhex(raw["private"]))
            session.identities[raw["name"]] = Identity(raw["name"], PublicKey.from_text(raw["public"]),
                                                       private)
        session.current = data["current"]
        for raw in data["vessels"]:
            key = raw["node_key"]
            session.vessels[int(raw["id"])] = VesselRef(
                str(raw["host"]), int(raw["port"]), str(raw["vessel"]),
                None if key is None else PublicKey.from_text(key))
        session.groups = {str(k): [int(n) for n in v] for k, v in data["groups"].items()}
        session.target = str(data["target"])
        session._next_id = int(data["next_id"])
        session.grants = {str(k): bytes.fromhex(v) for k, v in data.get("grants", {}).items()}
        session.leases = {str(k): float(v) for k, v in data.get("leases", {}).items()}
        session.variables = _variables(data.get("variables", {}))
        raw_settings = data["settings"]
        session.settings = Settings(
            timeout=float(raw_settings["timeout"]), uploadrate=float(raw_settings["uploadrate"]),
            concurrency=int(raw_settings["concurrency"]),
            bootstrap=[_hostport(text) for text in raw_settings["bootstrap"]],
            autosave=bool(raw_settings.get("autosave", False)))
        return session


def _variables(raw: Mapping[str, Any]) -> dict[str, str]:
    """Saved variables, held to the limits ``set`` enforces (ValueError otherwise)."""
    if len(raw) > MAX_VARIABLES:
        raise ValueError(f"more than {MAX_VARIABLES} variables")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(value, str) or len(value) > MAX_VARIABLE_VALUE:
            raise ValueError(f"variable {name!r} is not a string of at most {MAX_VARIABLE_VALUE}")
        try:
            out[check_variable_name(str(name))] = value
        except UsageError as exc:
            raise ValueError(str(exc)) from None
    return out


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)
