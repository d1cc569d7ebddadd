"""The model's input, a documented contract: the series of one tenant-hour as plain data (``HourInput`` of ``Series``
and ``Summary``, the tenant label already stripped by the source), the names of the metrics the model reads, and
their de-duplication."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Callable, Mapping, NamedTuple

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Series:
    labels: Labels
    samples: list[tuple[float, float]]  # (unix seconds, value), ascending by time


class Summary(NamedTuple):
    """A series Prometheus already reduced over ``[start, end)``, in place of its samples.

    The source sends these where the reduction is all the model would take from the samples (its fetch policy,
    ``source/policy.py``); everywhere else it sends the samples, and the model refuses a summary where it needs
    samples. A tuple: a large tenant-hour holds 100,000 of them.
    """

    labels: Labels
    mean: float = math.nan      # of the samples: what the model takes of allocation and request series
    first: float | None = None  # times of the first and the last positive sample: what it takes of running series
    last: float | None = None
    # of usage series: a counter's reset-aware increase (CPU seconds) over the hour's consecutive samples, the
    # last one before the hour included; the highest sample of a gauge (working set) or the highest rate between
    # consecutive samples of a counter on the hour's scrape grid (model/usage.py defines both)
    increase: float = math.nan
    maximum: float = math.nan


@dataclass(frozen=True)
class HourInput:
    """Everything fetched for one tenant and the hour ``[start, end)``, keyed by metric name."""

    tenant: str
    start: int
    end: int
    step: int
    series: Mapping[str, list[Series | Summary]] = field(default_factory=dict)
    # Samples inside [start, end) per metric as the server counts them (NaN included), where the source counted
    # them: the sentinel metrics always are (coverage). Metrics missing here count their samples in ``series``.
    counted: Mapping[str, int] = field(default_factory=dict)

    def of(self, metric: str) -> list[Series | Summary]:
        return list(self.series.get(metric, ()))

    def sample_count(self, metrics: tuple[str, ...]) -> int:
        """Samples of ``metrics`` inside ``[start, end)``, duplicates included, as Thanos counts them."""
        total = 0
        for metric in metrics:
            if metric in self.counted:
                total += self.counted[metric]
            elif any(isinstance(s, Summary) for s in self.of(metric)):
                raise ValueError(f"{metric}: summaries without the server's sample count (HourInput.counted)")
            else:
                total += sum(1 for s in self.of(metric) for t, _ in s.samples if self.start <= t < self.end)
        return total

    def values_read(self) -> int:
        """What the model reads: each sample, and each summary (one value standing for a series' samples)."""
        return sum(1 if isinstance(s, Summary) else len(s.samples) for group in self.series.values() for s in group)


# Every metric the model reads, by name (IDENTITY below says which labels identify a series of each).
CONTAINER_CPU_ALLOCATION = "container_cpu_allocation"
CONTAINER_CPU_USAGE_SECONDS_TOTAL = "container_cpu_usage_seconds_total"  # cAdvisor
CONTAINER_MEMORY_WORKING_SET_BYTES = "container_memory_working_set_bytes"  # cAdvisor
CONTAINER_GPU_ALLOCATION = "container_gpu_allocation"
CONTAINER_MEMORY_ALLOCATION_BYTES = "container_memory_allocation_bytes"
KUBECOST_CLUSTER_INFO = "kubecost_cluster_info"
KUBECOST_CLUSTER_MANAGEMENT_COST = "kubecost_cluster_management_cost"
KUBECOST_LOAD_BALANCER_COST = "kubecost_load_balancer_cost"
KUBECOST_NETWORK_INTERNET_EGRESS_COST = "kubecost_network_internet_egress_cost"
KUBECOST_NETWORK_REGION_EGRESS_COST = "kubecost_network_region_egress_cost"
KUBECOST_NETWORK_ZONE_EGRESS_COST = "kubecost_network_zone_egress_cost"
KUBECOST_POD_NETWORK_EGRESS_BYTES_TOTAL = "kubecost_pod_network_egress_bytes_total"
KUBE_JOB_OWNER = "kube_job_owner"
KUBE_NAMESPACE_LABELS = "kube_namespace_labels"
KUBE_NODE_LABELS = "kube_node_labels"
KUBECOST_NODE_IS_SPOT = "kubecost_node_is_spot"
KUBE_NODE_STATUS_CAPACITY_CPU_CORES = "kube_node_status_capacity_cpu_cores"
KUBE_NODE_STATUS_CAPACITY_MEMORY_BYTES = "kube_node_status_capacity_memory_bytes"
KUBE_PERSISTENTVOLUME_CAPACITY_BYTES = "kube_persistentvolume_capacity_bytes"
KUBE_POD_CONTAINER_RESOURCE_REQUESTS = "kube_pod_container_resource_requests"
KUBE_POD_LABELS = "kube_pod_labels"
KUBE_POD_OWNER = "kube_pod_owner"
KUBE_REPLICASET_OWNER = "kube_replicaset_owner"
NODE_CPU_HOURLY_COST = "node_cpu_hourly_cost"
NODE_GPU_COUNT = "node_gpu_count"
NODE_GPU_HOURLY_COST = "node_gpu_hourly_cost"
NODE_RAM_HOURLY_COST = "node_ram_hourly_cost"
POD_PVC_ALLOCATION = "pod_pvc_allocation"
PV_HOURLY_COST = "pv_hourly_cost"
RUNNING = "kube_pod_container_status_running"
SERVICE_SELECTOR_LABELS = "service_selector_labels"

# The labels that identify a series of each metric. Two series equal on these are one series seen twice
# (typically once from kube-state-metrics, once re-emitted by the cost-model, with other job/instance labels).
CONTAINER = ("namespace", "pod", "container", "node")
NODE_PRICE = ("node",)
IDENTITY: dict[str, tuple[str, ...]] = {
    CONTAINER_CPU_ALLOCATION: CONTAINER,
    CONTAINER_MEMORY_ALLOCATION_BYTES: CONTAINER,
    CONTAINER_GPU_ALLOCATION: CONTAINER,
    KUBE_POD_CONTAINER_RESOURCE_REQUESTS: ("namespace", "pod", "container", "node", "resource"),
    RUNNING: ("namespace", "pod", "container", "uid"),
    KUBE_POD_OWNER: ("namespace", "pod", "owner_kind", "owner_name", "owner_is_controller"),
    KUBE_REPLICASET_OWNER: ("namespace", "replicaset", "owner_kind", "owner_name"),
    KUBE_JOB_OWNER: ("namespace", "job_name", "owner_kind", "owner_name"),
    NODE_CPU_HOURLY_COST: NODE_PRICE,
    NODE_RAM_HOURLY_COST: NODE_PRICE,
    NODE_GPU_HOURLY_COST: NODE_PRICE,
    NODE_GPU_COUNT: NODE_PRICE,
    KUBE_NODE_STATUS_CAPACITY_CPU_CORES: NODE_PRICE,
    KUBE_NODE_STATUS_CAPACITY_MEMORY_BYTES: NODE_PRICE,
    POD_PVC_ALLOCATION: ("namespace", "pod", "persistentvolumeclaim", "persistentvolume"),
    PV_HOURLY_COST: ("persistentvolume",),
    KUBE_PERSISTENTVOLUME_CAPACITY_BYTES: ("persistentvolume",),
    KUBECOST_LOAD_BALANCER_COST: ("namespace", "service_name", "ingress_ip"),
    KUBECOST_CLUSTER_MANAGEMENT_COST: ("provisioner_name",),
    KUBECOST_NETWORK_ZONE_EGRESS_COST: (),
    KUBECOST_NETWORK_REGION_EGRESS_COST: (),
    KUBECOST_NETWORK_INTERNET_EGRESS_COST: (),
    KUBECOST_POD_NETWORK_EGRESS_BYTES_TOTAL: ("namespace", "pod_name", "internet", "same_zone", "same_region"),
    KUBECOST_CLUSTER_INFO: ("id", "name"),
    KUBECOST_NODE_IS_SPOT: NODE_PRICE,
    # a restarted container is a new cgroup (id): its own series; copies from two scrapes of one kubelet merge
    CONTAINER_CPU_USAGE_SECONDS_TOTAL: ("namespace", "pod", "container", "id"),
    CONTAINER_MEMORY_WORKING_SET_BYTES: ("namespace", "pod", "container", "id"),
}
# cAdvisor's series of a pod's whole cgroup (container="") and of its pause container ("POD"): not containers,
# and counting them would count the pod's usage twice.
NOT_CONTAINERS = ("", "POD")

# Label-carrying metrics are not merged: every copy keeps its labels and the latest copy in the hour wins.
LABEL_METRICS = (KUBE_POD_LABELS, KUBE_NAMESPACE_LABELS, KUBE_NODE_LABELS, SERVICE_SELECTOR_LABELS)
# Metrics the allocation needs, besides every kubecost_* series kept as hourly samples.
NEEDED_METRICS = sorted([*IDENTITY, *LABEL_METRICS])
KEPT_PREFIX = "kubecost_"
COUNTERS = {KUBECOST_POD_NETWORK_EGRESS_BYTES_TOTAL, CONTAINER_CPU_USAGE_SECONDS_TOTAL}
GPU_RESOURCES = ("nvidia_com_gpu", "nvidia.com/gpu", "gpu")


def label_values(labels: Labels, keys: tuple[str, ...]) -> tuple[str, ...]:
    """The values of ``keys`` in ``labels``, a missing label read as ''. The model groups series by a few labels
    about 40,000 times in a 2,000-pod hour: read at C speed where all of them are there, the usual case."""
    try:
        return _getter(keys)(labels)
    except KeyError:
        return tuple(map(labels.get, keys, repeat("")))


@functools.cache
def _getter(keys: tuple[str, ...]) -> Callable[[Labels], tuple[str, ...]]:
    if len(keys) > 1:
        return itemgetter(*keys)
    return lambda labels: tuple(labels[k] for k in keys)  # itemgetter of one key gives the value, not a tuple


def identity(metric: str, labels: Labels) -> tuple[str, ...]:
    keys = IDENTITY.get(metric)
    if keys is None:
        return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))
    return label_values(labels, keys)


def deduplicate(metric: str, series: list[Series | Summary]) -> list[Series | Summary]:
    """Merge series with the same identity; at each timestamp the first series (in label order) wins.

    The merged series keeps the union of the labels (first non-empty value wins), so a label present on one
    copy only (``uid`` from kube-state-metrics, say) is not lost.
    """
    first: dict[tuple[str, ...], Series | Summary] = {}
    groups: dict[tuple[str, ...], list[Series | Summary]] = {}  # the identities seen more than once
    for s in series:
        key = identity(metric, s.labels)
        if key in first:
            groups.setdefault(key, [first[key]]).append(s)
        else:
            first[key] = s
    if not groups:  # the usual hour: nothing seen twice
        return list(first.values())
    merged = []
    for key, one in first.items():
        copies = groups.get(key)
        if copies is None:
            merged.append(one)
            continue
        if any(isinstance(copy, Summary) for copy in copies):
            raise ValueError(f"{metric}: copies of one series summarised; merging them needs their samples")
        copies.sort(key=lambda s: sorted(s.labels.items()))
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


def resource_kind(resource: str) -> str | None:
    """``cpu``, ``ram`` or ``gpu`` for a request series' ``resource`` label; None for resources without a price."""
    if resource == "cpu":
        return "cpu"
    if resource == "memory":
        return "ram"
    return "gpu" if resource in GPU_RESOURCES else None
