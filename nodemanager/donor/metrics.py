"""Prometheus text metrics of a node (``/metrics`` on the donor's local page).

``NodeCollector`` builds every metric from a fresh ``NodeView`` and the donor control at
scrape time (nothing is counted twice, nothing goes stale); ``render`` gives the text
exposition format. Names: ``seattle_`` + what; per-vessel series carry a ``vessel`` label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nodemanager.donor.policy import REASONS
from nodemanager.node.model import STATUSES, NodeView


class NodeCollector(Collector):
    """Vessels, requests (the port), donor control, reachability, relays and updates."""

    def __init__(self, view: Callable[[], NodeView],
                 donor: Callable[[], Mapping[str, object]] | None = None) -> None:
        self._view = view
        self._donor = donor

    def collect(self) -> Iterator[Metric]:
        view = self._view()
        yield from _vessels(view)
        yield from _port(view)
        if self._donor is not None:
            yield from _donor(self._donor())
        yield from _maps(view)


def _vessels(view: NodeView) -> Iterator[Metric]:
    statuses = GaugeMetricFamily("seattle_vessels", "Vessels by program status",
                                 labels=["status"])
    counts = dict.fromkeys(STATUSES, 0)
    cpu = CounterMetricFamily("seattle_vessel_cpu_seconds", "CPU time of the vessel's program",
                              labels=["vessel"])
    memory = GaugeMetricFamily("seattle_vessel_memory_bytes", "RSS of the vessel's program",
                               labels=["vessel"])
    disk = GaugeMetricFamily("seattle_vessel_disk_bytes", "Disk the vessel's files use",
                             labels=["vessel"])
    share = GaugeMetricFamily("seattle_vessel_cpu_share", "The vessel's CPU share (cores)",
                              labels=["vessel"])
    paused = GaugeMetricFamily("seattle_vessel_paused", "1 while the donor pauses the program",
                               labels=["vessel", "reason"])
    for name, vessel in sorted(view.vessels.items()):
        live = view.status_of(name)
        counts[live.status] = counts.get(live.status, 0) + 1
        cpu.add_metric([name], float(live.usage.get("cpu", 0.0)))
        memory.add_metric([name], float(live.usage.get("memory", 0.0)))
        disk.add_metric([name], float(live.usage.get("diskused", 0.0)))
        share.add_metric([name], vessel.resources["cpu"])
        for reason in REASONS:
            paused.add_metric([name, reason], 1.0 if live.paused == reason else 0.0)
    for status, count in counts.items():
        statuses.add_metric([status], count)
    yield from (statuses, cpu, memory, disk, share, paused)


def _port(view: NodeView) -> Iterator[Metric]:
    if view.port_stats is None:
        return
    stats = view.port_stats.as_dict()
    for key, value in sorted(stats.items()):
        if key.endswith("_total"):
            yield CounterMetricFamily(f"seattle_port_{key[:-6]}", f"Port: {key[:-6]} since start",
                                      value=value)
        else:
            yield GaugeMetricFamily(f"seattle_port_{key}", f"Port: {key} now", value=value)


def _donor(status: Mapping[str, object]) -> Iterator[Metric]:
    paused = GaugeMetricFamily("seattle_donor_paused", "1 while vessels are paused, by reason",
                               labels=["reason"])
    for reason in REASONS:
        paused.add_metric([reason], 1.0 if status.get("paused") == reason else 0.0)
    yield paused
    factor = status.get("cpu_factor")
    if isinstance(factor, int | float):
        yield GaugeMetricFamily("seattle_donor_cpu_factor", "Fraction of each CPU share in force",
                                value=float(factor))
    other = status.get("other_cpu")
    if isinstance(other, int | float):
        yield GaugeMetricFamily("seattle_donor_other_cpu_percent",
                                "CPU use of everything but the vessels, % of the machine",
                                value=float(other))


def _maps(view: NodeView) -> Iterator[Metric]:
    """Numbers from the reachability, updates, relay and relayed status maps, flattened."""
    sources: dict[str, Mapping[str, object] | None] = {
        "reachability": view.reachability, "updates": view.updates}
    for name in ("relay", "relayed", "dht"):
        value = view.extras.get(name)
        sources[name] = value if isinstance(value, Mapping) else None
    for prefix, data in sources.items():
        if not data:
            continue
        for key, value in sorted(_numbers(data).items()):
            yield GaugeMetricFamily(f"seattle_{prefix}_{key}", f"{prefix} status: {key}",
                                    value=value)


def _numbers(data: Mapping[str, object], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        name = "".join(c if c.isalnum() else "_" for c in f"{prefix}{key}").lower()
        if isinstance(value, bool):
            out[name] = 1.0 if value else 0.0
        elif isinstance(value, int | float):
            out[name] = float(value)
        elif isinstance(value, Mapping) and not prefix:
            out.update(_numbers(value, f"{key}_"))
    return out


def render(collector: NodeCollector) -> bytes:
    """The Prometheus text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
