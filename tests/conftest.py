"""Hooks for every test package."""

from __future__ import annotations

import pytest

from tests.support.requires import skip_or_fail


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires"):
        ok, reason = mark.args
        if not ok:
            skip_or_fail(reason)
