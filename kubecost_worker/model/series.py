"""The model's input: the raw samples of one tenant-hour, as plain data, and their de-duplication."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Series:
    labels: Labels
    samples: list[tuple[float, float]]  # (unix seconds, value), ascending by time


@dataclass(frozen=True)
class HourInput:
    """Everything fetched for one tenant and the hour ``[start, end)``, keyed by metric name."""

    tenant: str
    start: int
    end: int
    step: int
    series: Mapping[str, list[Series]] = field(default_factory=dict)

    def of(self, metric: str) -> list[Series]:
        return list(self.series.get(metric, ()))

    def sample_count(self, metrics: tuple[str, ...] | None = None) -> int:
        """Raw samples inside ``[start, end)`` (duplicates included, as Thanos would count them)."""
        return sum(1 for metric, group in self.series.items() if metrics is None or metric in metrics
                   for s in group for t, _ in s.samples if self.start <= t < self.end)


# The labels that identify a series of each metric. Two series equal on these are one series seen twice
# (typically once from kube-state-metrics, once re-emitted by the cost-model, with other job/instance labels).
CONTAINER = ("namespace", "pod", "container", "node")
NODE_PRICE = ("node",)
IDENTITY: dict[str, tuple[str, ...]] = {
    "container_cpu_allocation": CONTAINER,
    "container_memory_allocation_bytes": CONTAINER,
    "container_gpu_allocation": CONTAINER,
    "kube_pod_container_resource_requests": ("namespace", "pod", "container", "node", "resource"),
    "kube_pod_container_status_running": ("namespace", "pod", "container", "uid"),
    "kube_pod_owner": ("namespace", "pod", "owner_kind", "owner_name", "owner_is_controller"),
    "kube_replicaset_owner": ("namespace", "replicaset", "owner_kind", "owner_name"),
    "kube_job_owner": ("namespace", "job_name", "owner_kind", "owner_name"),
    "node_cpu_hourly_cost": NODE_PRICE,
    "node_ram_hourly_cost": NODE_PRICE,
    "node_gpu_hourly_cost": NODE_PRICE,
    "node_gpu_count": NODE_PRICE,
    "kube_node_status_capacity_cpu_cores": NODE_PRICE,
    "kube_node_status_capacity_memory_bytes": NODE_PRICE,
    "pod_pvc_allocation": ("namespace", "pod", "persistentvolumeclaim", "persistentvolume"),
    "pv_hourly_cost": ("persistentvolume",),
    "kube_persistentvolume_capacity_bytes": ("persistentvolume",),
    "kubecost_load_balancer_cost": ("namespace", "service_name", "ingress_ip"),
    "kubecost_cluster_management_cost": ("provisioner_name",),
    "kubecost_network_zone_egress_cost": (),
    "kubecost_network_region_egress_cost": (),
    "kubecost_network_internet_egress_cost": (),
    "kubecost_pod_network_egress_bytes_total": ("namespace", "pod_name", "internet", "same_zone", "same_region"),
    "kubecost_cluster_info": ("id", "name"),
}

# Label-carrying metrics are not merged: every copy keeps its labels and the latest copy in the hour wins.
LABEL_METRICS = ("kube_pod_labels", "kube_namespace_labels")
# Metrics the allocation needs, besides every kubecost_* series kept as hourly samples.
NEEDED_METRICS = sorted([*IDENTITY, *LABEL_METRICS])
KEPT_PREFIX = "kubecost_"
COUNTERS = {"kubecost_pod_network_egress_bytes_total"}
# Counted per hour in the run ledger and re-counted in Thanos by the scheduler: when the count grew, late
# samples arrived (remote-write retries) and the hour is computed again. Node prices and pod running series
# are in every useful scrape and arrive in the same remote-write batches as the rest.
SENTINEL_METRICS = ("node_cpu_hourly_cost", "kube_pod_container_status_running")


def identity(metric: str, labels: Labels) -> tuple[str, ...]:
    keys = IDENTITY.get(metric)
    if keys is None:
        return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))
    return tuple(labels.get(k, "") for k in keys)


def deduplicate(metric: str, series: list[Series]) -> list[Series]:
    """Merge series with the same identity; at each timestamp the first series (in label order) wins.

    The merged series keeps the union of the labels (first non-empty value wins), so a label present on one
    copy only (``uid`` from kube-state-metrics, say) is not lost.
    """
    groups: dict[tuple[str, ...], list[Series]] = {}
    for s in sorted(series, key=lambda s: sorted(s.labels.items())):
        groups.setdefault(identity(metric, s.labels), []).append(s)
    merged = []
    for copies in groups.values():
        if len(copies) == 1:
            merged.append(copies[0])
            continue
        labels: dict[str, str] = {}
        by_time: dict[float, float] = {}
        for copy in copies:
            for k, v in copy.labels.items():
                if v and not labels.get(k):
                    labels[k] = v
            for t, v in copy.samples:
                by_time.setdefault(t, v)
        merged.append(Series(labels, sorted(by_time.items())))
    return merged
