"""The experiment API: scripting measurements over many vessels (docs/experiments.md).

``Experiment`` (async, trio) and ``BlockingExperiment`` (the same calls, blocking) find
vessels (DHT, a node, a seash saved group, the community pool), upload, run, stop, wait,
download and read logs on many vessels at once, with one ``NodeResult`` per vessel;
``Watcher`` calls back on status changes and ``KeepRunning`` keeps N vessels running.
"""

from seash.client import NodeResult, describe_error
from seash.experiment.blocking import BlockingExperiment
from seash.experiment.core import Experiment
from seash.experiment.identity import load_group, load_identity, load_public_key
from seash.experiment.keep import KeepRunning, Roster
from seash.experiment.model import (
    EVENT_KINDS,
    Event,
    EventKind,
    ExperimentError,
    Seen,
    Vessel,
    changes,
    ending,
)
from seash.experiment.watch import Callback, Watcher

__all__ = [
    "EVENT_KINDS",
    "BlockingExperiment",
    "Callback",
    "Event",
    "EventKind",
    "Experiment",
    "ExperimentError",
    "KeepRunning",
    "NodeResult",
    "Roster",
    "Seen",
    "Vessel",
    "Watcher",
    "changes",
    "describe_error",
    "ending",
    "load_group",
    "load_identity",
    "load_public_key",
]
