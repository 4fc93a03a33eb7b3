"""The planner's vessel spec: who owns how much of a donation (pure).

Seattle's rules (docs/seattle.md, Installers): a donation is cut in 10 % steps; every vessel has
one owner and zero or more users; percentages are multiples of 10 and, with the reserved
vessel, sum to 100. Seattle's builder always reserved 20 % for the project's key. With no
central project here, whatever the planner leaves unassigned becomes one *reserved* vessel
owned by the planner's own key (or ``reserved_owner``); a spec of exactly 100 % has none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from installer.errors import SpecError
from seattlecore import CoreError, PublicKey

STEP = 10
"""Vessels are sized in steps of this many percent of the donation."""
MAX_HOSTS = 16
"""Most bootstrap peers a bundle may carry."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VesselShare:
    """One vessel of the plan: a share of the donation and who may use it."""

    percent: int
    """Multiple of 10, 10..100."""
    owner: PublicKey
    users: tuple[PublicKey, ...] = ()
    reserved: bool = False
    """True for the vessel that holds the planner's unassigned remainder."""
    pool: bool = False
    """A community-pool share (docs/pool.md): the node owns it and lends it to the members
    of the planner's pool; ``owner`` is the planner (the pool's name)."""

    def __post_init__(self) -> None:
        if type(self.percent) is not int or not STEP <= self.percent <= 100 or self.percent % STEP:
            raise SpecError(f"vessel share must be a multiple of {STEP} % from 10 to 100, "
                            f"got {self.percent!r}")
        if len(set(self.users)) != len(self.users):
            raise SpecError("a vessel lists the same user key twice")

    @property
    def chunks(self) -> int:
        """How many 10 % chunks of the donation this vessel gets."""
        return self.percent // STEP


KeyResolver = Callable[[str], PublicKey]


def key_from_text(text: str) -> PublicKey:
    """The default resolver: a key given as 64 hex digits."""
    try:
        return PublicKey.from_text(text)
    except CoreError as exc:
        raise SpecError(f"bad public key {text[:20]!r}: {exc}") from exc


def parse_vessel_arg(text: str, resolve: KeyResolver = key_from_text) -> VesselShare:
    """Parse ``PERCENT:OWNERKEY[:USERKEY,...]`` (keys as hex, or whatever ``resolve`` accepts).

    >>> parse_vessel_arg("30:" + "ab" * 32).percent
    30
    """
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        raise SpecError(f"expected PERCENT:OWNERKEY[:USERKEY,...], got {text!r}")
    percent_text = parts[0].strip().rstrip("%")
    if not percent_text.isdigit():
        raise SpecError(f"vessel percent must be a whole number, got {parts[0]!r}")
    users_text = parts[2] if len(parts) == 3 else ""
    users = tuple(resolve(u.strip()) for u in users_text.split(",") if u.strip())
    return VesselShare(percent=int(percent_text), owner=resolve(parts[1].strip()), users=users)


def complete_shares(
    shares: Sequence[VesselShare], reserved_owner: PublicKey
) -> tuple[VesselShare, ...]:
    """Check the planner's shares and add the reserved vessel for any remainder."""
    if not shares:
        raise SpecError("give at least one --vessel PERCENT:OWNERKEY (or --pool PERCENT)")
    if any(share.reserved for share in shares):
        raise SpecError("the reserved vessel is added by the builder, not given")
    assigned = sum(share.percent for share in shares)
    if assigned > 100:
        raise SpecError(f"vessels add up to {assigned} %, more than 100 % of the donation")
    result = tuple(shares)
    if assigned < 100:
        result += (VesselShare(percent=100 - assigned, owner=reserved_owner, reserved=True),)
    return result


def check_bootstrap(peers: Iterable[str]) -> tuple[str, ...]:
    """Validate ``HOST:PORT`` bootstrap peers; at least one is required."""
    result: list[str] = []
    for peer in peers:
        host, sep, port = peer.strip().rpartition(":")
        host = host.strip("[]")
        if (not sep or not host or any(c.isspace() for c in host)
                or not port.isdigit() or not 0 < int(port) < 65536):
            raise SpecError(f"bootstrap peer must be HOST:PORT, got {peer!r}")
        normal = f"{host}:{int(port)}"
        if normal not in result:
            result.append(normal)
    if not result:
        raise SpecError("give at least one --bootstrap HOST:PORT (a DHT node to join)")
    if len(result) > MAX_HOSTS:
        raise SpecError(f"at most {MAX_HOSTS} bootstrap peers")
    return tuple(result)
