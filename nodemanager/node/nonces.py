"""Group commit of the nonces of signed requests that change nothing (trio shell).

Every signed request's nonce is persisted before it is answered (docs/protocol.md §4 step
12). A request that changes state commits its nonce with its change, in one transaction; a
read-only one (GetVesselResources, ListFilesInVessel, ...) commits only its nonce. Under
load, one SQLite transaction per read-only request was the largest cost after the
signature check, so those nonces are committed together: when several trusted connections
(owners and users, docs/protocol.md §10) are open, the first request lets the others run
for one trip through the scheduler, then commits every nonce that arrived meanwhile in one
transaction, and each request learns whether its nonce was new. Otherwise (one owner, or
one owner beside a crowd of unauthenticated connections, whose trips through the
scheduler would only delay it) a request commits at once.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from nodemanager.errors import ReplayedNonce
from nodemanager.node.state import NodeState


class _Group:
    __slots__ = ("done", "failure", "fresh", "nonces")

    def __init__(self) -> None:
        self.nonces: list[tuple[bytes, float]] = []
        self.fresh: list[bool] = []
        self.done = trio.Event()
        self.failure: BaseException | None = None


class NonceCommits:
    """Commits read-only requests' nonces in groups; ``busy()``: may others be coming?"""

    def __init__(self, state: NodeState, busy: Callable[[], bool], window: float) -> None:
        self._state = state
        self._busy = busy
        self._window = window
        self._open: _Group | None = None
        self.groups = 0
        """Transactions made (for tests and benchmarks)."""

    async def record(self, nonce: bytes, ts: float, now: float) -> None:
        """Persist ``nonce``; ReplayedNonce if it was accepted before."""
        group = self._open
        if group is not None:  # join the group being gathered
            index = len(group.nonces)
            group.nonces.append((nonce, ts))
            with trio.CancelScope(shield=True):  # the leader commits it regardless
                await group.done.wait()
        else:
            group = _Group()
            index = 0
            group.nonces.append((nonce, ts))
            if self._busy():
                self._open = group
                await trio.lowlevel.cancel_shielded_checkpoint()
                self._open = None
            self._commit(group, now)
        if group.failure is not None:
            raise group.failure
        if not group.fresh[index]:
            raise ReplayedNonce("this request's nonce was already used")

    def _commit(self, group: _Group, now: float) -> None:
        try:
            group.fresh = self._state.record_nonces(group.nonces, now=now, window=self._window)
            self.groups += 1
        except BaseException as exc:  # every member must learn it (e.g. a full disk)
            group.failure = exc
            raise
        finally:
            group.done.set()
