"""The package's public names are exactly ``__all__``."""

from __future__ import annotations

import seash


def test_all_is_exact() -> None:
    for name in seash.__all__:  # lazy names (seattlecore.lazy) resolve on first use
        getattr(seash, name)
    public = {name for name in vars(seash) if not name.startswith("_")}
    modules = {"client", "commands", "errors", "session", "parse", "executor", "tree",
               "identities", "discovery", "groups", "files", "programs", "logs", "vessels", "owner",
               "settings", "statefile", "shell", "leases", "experiment"}
    assert public - modules == set(seash.__all__)
