"""Installers: what a planner builds, what a donor runs, how it is packed and released.

``planner`` (the vessel spec, pure; signed bundles), ``donor`` (the ``InstallPlan``, pure, and
its application; boot entries, managed versions, the launcher, ``status``), ``packing`` (the
self-contained ``.pyz`` and its wheels) and ``release`` (the TUF repository). The testbeds that
run many nodes on one machine are the ``testbed`` package.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from seattlecore.lazy import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from installer.donor.plan import (
        Current,
        InstallOptions,
        InstallPlan,
        MachineProfile,
        donated_resources,
        max_resources,
        plan_install,
        plan_uninstall,
        vessel_tables,
    )
    from installer.errors import (
        AlreadyInstalled,
        BootEntryError,
        BundleError,
        InstallError,
        InsufficientResources,
        NodeStartError,
        NotInstalled,
        SpecError,
        TestbedError,
        UntrustedPlanner,
    )
    from installer.planner.bundle import Manifest, OpenedBundle, build_bundle, new_manifest, open_bundle
    from installer.planner.spec import VesselShare, check_bootstrap, complete_shares, parse_vessel_arg

__getattr__ = _lazy_exports(__name__, {
    "installer.planner.bundle": (
        "Manifest", "OpenedBundle", "build_bundle", "new_manifest", "open_bundle",
    ),
    "installer.errors": (
        "AlreadyInstalled", "BootEntryError", "BundleError", "InstallError",
        "InsufficientResources", "NodeStartError", "NotInstalled", "SpecError", "TestbedError",
        "UntrustedPlanner",
    ),
    "installer.donor.plan": (
        "Current", "InstallOptions", "InstallPlan", "MachineProfile", "donated_resources",
        "max_resources", "plan_install", "plan_uninstall", "vessel_tables",
    ),
    "installer.planner.spec": (
        "VesselShare", "check_bootstrap", "complete_shares", "parse_vessel_arg",
    ),
})

__all__ = [
    "AlreadyInstalled",
    "BootEntryError",
    "BundleError",
    "Current",
    "InstallError",
    "InstallOptions",
    "InstallPlan",
    "InsufficientResources",
    "MachineProfile",
    "Manifest",
    "NodeStartError",
    "NotInstalled",
    "OpenedBundle",
    "SpecError",
    "TestbedError",
    "UntrustedPlanner",
    "VesselShare",
    "build_bundle",
    "check_bootstrap",
    "complete_shares",
    "donated_resources",
    "max_resources",
    "new_manifest",
    "open_bundle",
    "parse_vessel_arg",
    "plan_install",
    "plan_uninstall",
    "vessel_tables",
]
