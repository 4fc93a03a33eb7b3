"""What ``GetNodeStatus`` shows besides the server's own state, read each time it is asked.

The daemon builds one ``StatusSources`` before the server and passes it in; each part that
keeps a status adds its entry when it is made (the updater, the relay client, hole punching,
the relay). The server only reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from nodemanager.nat.reachability import ReachabilityBoard, reach_dict

UPDATES = "updates"
"""The updater's entry: ``GetNodeStatus`` shows it as the ``updates`` map."""


class StatusSources:
    """The node's reachability board and named status entries (each a zero-argument callable)."""

    def __init__(self, reachability: ReachabilityBoard | None = None) -> None:
        self.reachability = reachability
        self._sources: dict[str, Callable[[], object]] = {}

    def provide(self, name: str, source: Callable[[], object]) -> None:
        """Show ``source()`` as the entry ``name`` (``UPDATES``: the updates map)."""
        self._sources[name] = source

    def reach(self) -> Mapping[str, object] | None:
        return None if self.reachability is None else reach_dict(self.reachability.state)

    def updates(self) -> Mapping[str, object] | None:
        source = self._sources.get(UPDATES)
        value = None if source is None else source()
        return value if isinstance(value, Mapping) else None

    def extras(self) -> dict[str, object]:
        return {name: source() for name, source in self._sources.items() if name != UPDATES}
