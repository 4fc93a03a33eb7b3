"""Hooks for every test package."""

from __future__ import annotations

import pytest

from tests.support.requires import check_requires


def pytest_runtest_setup(item: pytest.Item) -> None:
    check_requires(item)
