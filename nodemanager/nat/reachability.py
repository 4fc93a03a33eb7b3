"""What a node manager knows about its own reachability (shared by the prober and the relays).

The AutoNAT-style prober (peers dial back the node's observed address) writes here; the
relay client (which keeps reservations while the node is private), the DHT node (client
mode while its UDP port is private) and ``GetNodeStatus`` read from here. An operator can
pin the answer (``--reachability public|private``), which tests use on loopback.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

import trio


class Reach(enum.Enum):
    """Can peers open connections to this address?"""

    UNKNOWN = "unknown"
    PUBLIC = "public"
    PRIVATE = "private"


@dataclass(frozen=True, slots=True)
class ReachState:
    """The node's current view of itself; every field is shown by ``status``."""

    tcp: Reach = Reach.UNKNOWN
    """The node manager's request port, as dialled by peers at the observed address."""
    udp: Reach = Reach.UNKNOWN
    """The DHT node's port (private: the DHT node runs in client mode)."""
    observed: str | None = None
    """The IP address peers agree they see this node at, if any."""
    reason: str = "not probed yet"
    """One line saying why (shown in status)."""
    pinned: bool = False
    """Set by the operator (``--reachability``), never changed by probes."""


class ReachabilityBoard:
    """The current ``ReachState`` plus a way to wait for it to change (trio)."""

    def __init__(self, initial: ReachState | None = None) -> None:
        self._state = initial or ReachState()
        self._generation = 0
        self._changed = trio.Event()

    @property
    def state(self) -> ReachState:
        return self._state

    @property
    def generation(self) -> int:
        return self._generation

    def set(self, state: ReachState) -> None:
        """Publish ``state`` (ignored if the current state is pinned and ``state`` is not)."""
        if self._state.pinned and not state.pinned:
            return
        if state == self._state:
            return
        self._state = state
        self._generation += 1
        self._changed.set()
        self._changed = trio.Event()

    def update(self, **changes: object) -> None:
        """``set(replace(state, **changes))``; a no-op on a pinned state."""
        if self._state.pinned:
            return
        self.set(replace(self._state, **changes))  # type: ignore[arg-type]

    async def wait_changed(self, seen: int) -> int:
        """Return the generation once it differs from ``seen``."""
        while self._generation == seen:
            await self._changed.wait()
        return self._generation


def pinned(reach: Reach, reason: str = "set by the operator") -> ReachState:
    """A state fixed by ``--reachability`` (both ports)."""
    return ReachState(tcp=reach, udp=reach, reason=reason, pinned=True)


def reach_dict(state: ReachState) -> dict[str, object]:
    """GetNodeStatus's ``reachability`` map (docs/protocol.md section 13)."""
    return {"tcp": state.tcp.value, "udp": state.udp.value, "observed": state.observed,
            "reason": state.reason, "pinned": state.pinned}


def describe(state: ReachState) -> str:
    """One line for status output: ``tcp public, udp private at 198.18.0.5 (reason)``."""
    where = f" at {state.observed}" if state.observed else ""
    pinned_text = ", pinned" if state.pinned else ""
    return f"tcp {state.tcp.value}, udp {state.udp.value}{where}{pinned_text} ({state.reason})"
