from __future__ import annotations

import types

import installer


def test_all_is_exact() -> None:
    for name in installer.__all__:  # lazy names (seattlecore.lazy) resolve on first use
        getattr(installer, name)
    public = {name for name, value in vars(installer).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert set(installer.__all__) == public
