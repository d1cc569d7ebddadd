"""The model's input: the raw samples of one tenant-hour, as plain data, and their de-duplication."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Series:
    labels: Labels
    samples: list[tuple[float, float]]  # (unix seconds, value), ascending by time


class Summary(NamedTuple):
    """A series Prometheus already reduced over ``[start, end)``, in place of its samples.

    The source sends these for the ``SUMMARISABLE`` metrics where the reduction is all the model would take from
    the samples (see ``pods_needing_samples``); everywhere else it sends the samples. A tuple: a large tenant-hour
    holds 100,000 of them.
    """

    labels: Labels
    mean: float = math.nan      # of the samples: what the model takes of allocation and request series
    first: float | None = None  # times of the first and the last positive sample: what it takes of running series
    last: float | None = None


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
RUNNING = "kube_pod_container_status_running"
# Pod-level metrics: the bulk of a tenant-hour's samples. Of these the model takes only a mean (allocations and
# requests), the first and last positive sample (running series) or the labels (owners, pod labels). Prometheus
# reduces them, so that one number per series crosses the network instead of one per sample.
CONTAINER_SUMMARIES = ("container_cpu_allocation", "container_memory_allocation_bytes", "container_gpu_allocation",
                       "kube_pod_container_resource_requests")
COUNTED_SUMMARIES = (RUNNING, "kube_pod_owner", "kube_pod_labels")  # their per-series sample counts come along
SUMMARISABLE = (*CONTAINER_SUMMARIES, *COUNTED_SUMMARIES)
GPU_RESOURCES = ("nvidia_com_gpu", "nvidia.com/gpu", "gpu")
# Counted per hour in the run ledger and re-counted in Thanos by the scheduler: when the count grew, late
# samples arrived (remote-write retries) and the hour is computed again. Node prices and pod running series
# are in every useful scrape and arrive in the same remote-write batches as the rest.
SENTINEL_METRICS = ("node_cpu_hourly_cost", "kube_pod_container_status_running")


def identity(metric: str, labels: Labels) -> tuple[str, ...]:
    keys = IDENTITY.get(metric)
    if keys is None:
        return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))
    return tuple(labels.get(k, "") for k in keys)


def deduplicate(metric: str, series: list[Series | Summary]) -> list[Series | Summary]:
    """Merge series with the same identity; at each timestamp the first series (in label order) wins.

    The merged series keeps the union of the labels (first non-empty value wins), so a label present on one
    copy only (``uid`` from kube-state-metrics, say) is not lost.
    """
    groups: dict[tuple[str, ...], list[Series | Summary]] = {}
    for s in series:
        groups.setdefault(identity(metric, s.labels), []).append(s)
    merged = []
    for copies in groups.values():
        if len(copies) == 1:
            merged.append(copies[0])
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


def pod_of(s: Series | Summary) -> tuple[str, str]:
    return s.labels.get("namespace", ""), s.labels.get("pod", "")


def pods_needing_samples(series: Mapping[str, list[Series | Summary]], start: float,
                         end: float) -> set[tuple[str, str]]:
    """``(namespace, pod)`` whose summaries cannot stand for their samples: the source fetches those samples.

    - the pod did not run as exactly one instance (uid) in ``[start, end)``: the model splits its samples between
      instances by time, or takes the running time of a pod without running samples from its allocations;
    - a series the model would merge or add to another one: copies of one series, two series of one container
      and resource, two label series of one pod;
    - a mean that is not finite: the model leaves NaN and infinite samples out;
    - a running series summarised without its first or last positive sample.
    """
    instances: dict[tuple[str, str], set[str]] = defaultdict(set)
    needed: set[tuple[str, str]] = set()
    for s in series.get(RUNNING, ()):
        if isinstance(s, Summary) and (s.first is None or s.last is None):
            needed.add(pod_of(s))
        elif isinstance(s, Summary) or any(start <= t < end and v > 0 for t, v in s.samples):
            instances[pod_of(s)].add(s.labels.get("uid", ""))
    for metric in SUMMARISABLE:
        summarised: dict[tuple, bool] = {}  # key -> whether a series of that key came as a summary
        for s in series.get(metric, ()):
            labels, pod = s.labels, pod_of(s)
            if metric in CONTAINER_SUMMARIES:
                key = (labels.get("cluster_id", ""), *pod, labels.get("container", ""),
                       resource_kind(labels.get("resource", "cpu")))
                if isinstance(s, Summary) and (not math.isfinite(s.mean) or len(instances.get(pod, ())) != 1):
                    needed.add(pod)
            elif metric == RUNNING:
                key = (labels.get("cluster_id", ""), *identity(metric, labels))
            elif metric in LABEL_METRICS:
                key = (labels.get("cluster_id", ""), *pod, labels.get("uid", ""))
            else:
                continue  # owners: the model reads only their labels, copies and all
            is_summary = isinstance(s, Summary)
            # a second series of one key: the model merges or adds them, which needs their samples
            if key in summarised and (is_summary or summarised[key]):
                needed.add(pod)
            summarised[key] = summarised.get(key, False) or is_summary
    return needed
