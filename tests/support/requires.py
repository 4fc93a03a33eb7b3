"""Tests that need a layer or tool of the host (seccomp, Landlock, root, tmpfs, a corpus).

Outside CI such a test is skipped where the host lacks what it needs. Under ``CI=true`` it
fails instead: a regression in detection (say ``detect_support()`` wrongly reporting no
seccomp) must turn the run red, not silently switch the tests off.

    needs_root = requires(os.geteuid() == 0, "switching uid needs root")

    @needs_root
    def test_uid_drop() -> None: ...
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the running test, or fail it under CI=true."""
    if CI:
        pytest.fail(f"{reason} (CI=true: a missing layer or tool fails the run)", pytrace=False)
    pytest.skip(reason)


def requires(ok: bool, reason: str) -> pytest.MarkDecorator:
    """A mark: the test runs when ``ok``; otherwise it is skipped, or failed under CI=true."""
    return pytest.mark.requires(ok, reason)


def check_requires(item: pytest.Item) -> None:
    """Before ``item`` runs: skip it (or fail it under CI) for its first unmet ``requires``."""
    for mark in item.iter_markers("requires"):
        ok, reason = mark.args
        if not ok:
            skip_or_fail(reason)
