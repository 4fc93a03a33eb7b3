"""An iterative lookup over disjoint paths (S/Kademlia §4.4, adapted) as a pure state machine.

The driver (``overlay.crawl``) asks ``next_queries(now)`` what to send, reports each outcome
with ``answered``/``failed``/``slow``, and stops when ``finished`` or at its deadline.

Invariants and bounds:
1. ``paths`` disjoint paths: the seeds are dealt round-robin over the paths (with fewer
   seeds than paths, the first answers are dealt to the empty paths), each path keeps its
   own shortlist, and an endpoint (address) is queried once per lookup, by whichever path
   asks first, whatever ids it claims. A hostile peer thus misleads only the path that
   asked it. The result keeps at most ``per_group`` contacts of one network group.
2. Per path at most ``alpha`` queries in flight, until an answer brings nothing closer; then
   (node lookups only) the rest of the path's k closest are asked at once (Kademlia §2.3).
   A query slower than the driver's soft timeout is marked ``slow``: it frees its slot and
   no longer holds the path open while the path has ``k`` other live candidates (its late
   answer is still used). A path with fewer (a small network, a new node that knows only its
   bootstrap peer) waits for its slow queries: a busy peer then costs its answer time, not
   the lookup.
3. A path is done when its ``k`` closest live candidates have all answered (and, with
   fewer than ``k`` live, no query of it is slow), or (value lookups) when ``quorum`` of
   its peers returned valid records.
4. Each shortlist keeps at most ``per_group`` candidates per network group and at most
   ``SHORTLIST_FACTOR * k`` candidates in all; each answer adds at most ``k`` contacts
   (``answers.decode_contacts``).
5. Contacts introduced by a peer whose introductions failed (or were slow) at least
   ``max_bad_intros`` times, and more often than they answered, are dropped: one peer
   handing out unreachable contacts costs one round, not the lookup.
6. At most ``max_queries`` queries per lookup.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from overlay.answers import Contact
from overlay.netgroup import group_of

State = Literal["new", "inflight", "slow", "answered", "failed"]
SHORTLIST_FACTOR = 3


@dataclass(slots=True)
class Candidate:
    contact: Contact
    distance: int
    path: int
    group: str | None
    via: str | None
    """``host:port`` of the peer that introduced it (None for seeds)."""
    state: State = "new"
    sent_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupParams:
    k: int = 20
    alpha: int = 2
    paths: int = 3
    per_group: int = 2
    max_queries: int = 240
    max_bad_intros: int = 2
    quorum: int = 0
    """Value lookups: a path is done once this many of its peers returned valid records."""


class Lookup:
    """State of one lookup for ``target``; see the module invariants."""

    def __init__(self, target: bytes, seeds: Sequence[Contact], params: LookupParams,
                 *, own_id: bytes = b"") -> None:
        self.target = target
        self.params = params
        self._goal = int.from_bytes(target, "big")
        self._own = own_id
        self._paths: list[dict[bytes, Candidate]] = [{} for _ in range(max(1, params.paths))]
        self._queried: set[tuple[str, int]] = set()
        self._bad_intros: Counter[str] = Counter()
        self._good_intros: Counter[str] = Counter()
        self._burst = [False] * len(self._paths)
        self._holders = [0] * len(self._paths)
        self._best: list[int | None] = [None] * len(self._paths)
        self.queries = 0
        ordered = sorted(seeds, key=lambda c: c.distance(self._goal))
        for i, contact in enumerate(ordered):
            self._offer(i % len(self._paths), contact, None)

    # -- shortlist ---------------------------------------------------------------------------
    def _offer(self, path: int, contact: Contact, via: str | None) -> None:
        shortlist = self._paths[path]
        if contact.node_id in shortlist or contact.node_id == self._own:
            return
        if via is not None and self._distrusted(via):
            return
        try:
            group = group_of(contact.host)
        except ValueError:
            return
        if group is not None:
            same = sum(1 for c in shortlist.values() if c.group == group and c.state != "failed")
            if same >= self.params.per_group:
                return
        shortlist[contact.node_id] = Candidate(contact, contact.distance(self._goal), path, group, via)
        self._trim(path)

    def _trim(self, path: int) -> None:
        shortlist = self._paths[path]
        limit = SHORTLIST_FACTOR * self.params.k
        if len(shortlist) <= limit:
            return
        spare = [c for c in shortlist.values() if c.state == "new"]
        spare.sort(key=lambda c: c.distance, reverse=True)
        for cand in spare[: len(shortlist) - limit]:
            del shortlist[cand.contact.node_id]

    def _live(self, path: int) -> list[Candidate]:
        """The path's k closest candidates that may still count (not failed, not slow)."""
        pool = [c for c in self._paths[path].values() if c.state in ("new", "inflight", "answered")]
        pool.sort(key=lambda c: c.distance)
        return pool[: self.params.k]

    # -- driving -----------------------------------------------------------------------------
    def next_queries(self, now: float) -> list[Candidate]:
        """Mark and return the candidates to query now (at most ``alpha`` in flight per path)."""
        out: list[Candidate] = []
        for path in range(len(self._paths)):
            busy = sum(1 for c in self._paths[path].values() if c.state == "inflight")
            limit = self.params.k if self._burst[path] else self.params.alpha
            while busy < limit and self.queries < self.params.max_queries:
                cand = next((c for c in self._live(path) if c.state == "new"), None)
                if cand is None:
                    break
                if cand.contact.addr in self._queried:
                    del self._paths[path][cand.contact.node_id]  # asked already (any path, any id)
                    continue
                cand.state, cand.sent_at = "inflight", now
                self._queried.add(cand.contact.addr)
                self.queries += 1
                busy += 1
                out.append(cand)
        return out

    def answered(self, cand: Candidate, contacts: Sequence[Contact]) -> None:
        """``cand`` answered with ``contacts`` (already decoded and validated)."""
        if cand.via is not None:
            if cand.state == "slow":
                self._bad_intros[cand.via] -= 1
            self._good_intros[cand.via] += 1
        cand.state = "answered"
        targets = [cand.path] + [p for p, s in enumerate(self._paths) if not s]
        for i, contact in enumerate(contacts[: self.params.k]):
            self._offer(targets[i % len(targets)], contact, cand.contact.label)
        live = self._live(cand.path)
        best = live[0].distance if live else None
        if best is not None and best == self._best[cand.path] and not self.params.quorum:
            self._burst[cand.path] = True  # no progress: ask all of the k closest at once
        self._best[cand.path] = best

    def failed(self, cand: Candidate) -> None:
        """``cand`` did not answer (hard timeout) or answered garbage."""
        if cand.via is not None and cand.state != "slow":
            self._blame(cand.via)
        cand.state = "failed"

    def holder(self, cand: Candidate) -> None:
        """``cand`` returned valid records (counts toward its path's ``quorum``)."""
        self._holders[cand.path] += 1

    def skip(self, cand: Candidate) -> None:
        """Give up on ``cand`` without asking (known silent): no blame on its introducer."""
        cand.state = "failed"

    def slow(self, cand: Candidate) -> None:
        """``cand`` passed the soft timeout: free its slot; a late answer still counts."""
        if cand.state == "inflight":
            cand.state = "slow"
            if cand.via is not None:
                self._blame(cand.via)

    def _blame(self, via: str) -> None:
        self._bad_intros[via] += 1
        if self._distrusted(via):
            for shortlist in self._paths:
                for node_id in [i for i, c in shortlist.items() if c.via == via and c.state == "new"]:
                    del shortlist[node_id]

    def _distrusted(self, via: str) -> bool:
        bad = self._bad_intros[via]
        return bad >= self.params.max_bad_intros and bad > self._good_intros[via]

    def path_done(self, path: int) -> bool:
        if self.params.quorum and self._holders[path] >= self.params.quorum:
            return True
        live = self._live(path)
        states = [c.state for c in self._paths[path].values()]
        if "inflight" in states:
            return False
        if self.queries >= self.params.max_queries:
            return True
        if len(live) < self.params.k and "slow" in states:
            return False  # too few others to go on: a slow peer's answer may still widen the path
        return all(c.state == "answered" for c in live)

    @property
    def finished(self) -> bool:
        return all(self.path_done(p) for p in range(len(self._paths)))

    def has_answers(self) -> bool:
        """Has any peer answered this lookup yet?"""
        return any(c.state == "answered" for s in self._paths for c in s.values())

    def inflight(self) -> list[Candidate]:
        return [c for s in self._paths for c in s.values() if c.state == "inflight"]

    def closest_answered(self, count: int) -> list[Contact]:
        """The ``count`` closest contacts that answered, over all paths, at most
        ``per_group`` of one network group."""
        done = {c.contact.node_id: c for s in self._paths for c in s.values() if c.state == "answered"}
        taken: Counter[str] = Counter()
        out: list[Contact] = []
        for cand in sorted(done.values(), key=lambda c: c.distance):
            if cand.group is not None and taken[cand.group] >= self.params.per_group:
                continue
            taken[cand.group or ""] += 1
            out.append(cand.contact)
            if len(out) == count:
                break
        return out

    def answered_labels(self) -> list[str]:
        return sorted({c.contact.label for s in self._paths for c in s.values() if c.state == "answered"})
