"""Errors of the installer, the bundle format and the local testbed.

::

    InstallError                  base of everything raised by ``installer``
    ├── SpecError                 the planner's vessel spec is invalid (over 100 %, bad key, ...)
    ├── BundleError               a bundle is unreadable, truncated, tampered or wrongly signed
    │   └── UntrustedPlanner      the bundle verifies, but not with the ``--trust``ed key
    ├── InsufficientResources     the donated share cannot pay one offcut per vessel
    ├── AlreadyInstalled          a different bundle is already installed in the prefix
    ├── NotInstalled              status/uninstall found no installation in the prefix
    ├── BootEntryError            adding or removing the start-at-boot entry failed
    ├── NodeStartError            the node manager did not come up
    └── TestbedError              ``seattle-testbed`` misuse or failure
"""

from __future__ import annotations


class InstallError(Exception):
    """Raised when the installer cannot do what was asked (base class)."""


class SpecError(InstallError):
    """Raised when a planner's vessel spec breaks Seattle's rules or names a bad key."""


class BundleError(InstallError):
    """Raised when a bundle is unreadable, truncated, tampered with or wrongly signed."""


class UntrustedPlanner(BundleError):
    """Raised when a bundle is validly signed, but not by the planner given with ``--trust``."""


class InsufficientResources(InstallError):
    """Raised when the donated share is too small to pay one offcut per vessel."""


class AlreadyInstalled(InstallError):
    """Raised when the prefix already holds an installation of a different bundle."""


class NotInstalled(InstallError):
    """Raised when the prefix holds no installation."""


class BootEntryError(InstallError):
    """Raised when the start-at-boot entry cannot be added or removed."""


class NodeStartError(InstallError):
    """Raised when the node manager does not start (see its log in the prefix)."""


class TestbedError(InstallError):
    """Raised when the local testbed cannot be started, stopped or read."""

    __test__ = False  # not a pytest test class
