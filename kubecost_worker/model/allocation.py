"""The OpenCost allocation model for one tenant-hour: raw series in, ``k8s_expenses`` rows out.

Pure functions only: no I/O, no clock. ``docs/model.md`` is the specification; each step below names the
section it implements.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from . import timeline
from .series import (CONTAINER_CPU_ALLOCATION, CONTAINER_GPU_ALLOCATION, CONTAINER_MEMORY_ALLOCATION_BYTES,
                     COUNTERS, KEPT_PREFIX, KUBECOST_CLUSTER_INFO, KUBECOST_CLUSTER_MANAGEMENT_COST,
                     KUBECOST_LOAD_BALANCER_COST, KUBECOST_POD_NETWORK_EGRESS_BYTES_TOTAL, KUBE_JOB_OWNER,
                     KUBE_NAMESPACE_LABELS, KUBE_NODE_STATUS_CAPACITY_CPU_CORES,
                     KUBE_NODE_STATUS_CAPACITY_MEMORY_BYTES, KUBE_PERSISTENTVOLUME_CAPACITY_BYTES,
                     KUBE_POD_CONTAINER_RESOURCE_REQUESTS, KUBE_POD_LABELS, KUBE_POD_OWNER, KUBE_REPLICASET_OWNER,
                     LABEL_METRICS, NODE_CPU_HOURLY_COST, NODE_GPU_COUNT, NODE_GPU_HOURLY_COST,
                     NODE_RAM_HOURLY_COST, POD_PVC_ALLOCATION, PV_HOURLY_COST, RUNNING, HourInput, Series, Summary,
                     deduplicate, resource_kind)
from .workload import Owners, resolve_workload

GIB = float(2**30)
IDLE = "__idle__"
MANAGEMENT = "__cluster_management__"
UNMOUNTED = "__unmounted__"


# The costs of a row, in the order its total adds them; the quantities they price.
COST_FIELDS = ("cpu_cost", "ram_cost", "gpu_cost", "pv_cost", "network_cost", "lb_cost", "management_cost")
QUANTITY_FIELDS = ("running_minutes", "cpu_core_hours", "ram_byte_hours", "gpu_hours", "pv_byte_hours")


@dataclass
class ExpenseRow:
    """One row of ``k8s_expenses`` (without the run bookkeeping the sink adds), its fields in the table's column
    order."""

    cloud_account_id: str
    cluster_id: str
    hour: int
    namespace: str
    workload_kind: str
    workload_name: str
    pod: str
    node: str
    running_minutes: float = 0.0
    cpu_core_hours: float = 0.0
    ram_byte_hours: float = 0.0
    gpu_hours: float = 0.0
    pv_byte_hours: float = 0.0
    cpu_cost: float = 0.0
    ram_cost: float = 0.0
    gpu_cost: float = 0.0
    pv_cost: float = 0.0
    network_cost: float = 0.0
    lb_cost: float = 0.0
    management_cost: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def total_cost(self) -> float:
        # left to right, as migration 0006's ALIAS adds them: the same double as the stored total
        return sum(getattr(self, name) for name in COST_FIELDS)

    @property
    def key(self) -> tuple[str, ...]:
        return (self.cluster_id, self.namespace, self.workload_kind, self.workload_name, self.pod, self.node)


@dataclass
class HourResult:
    rows: list[ExpenseRow]
    metric_samples: list["MetricSample"]
    samples_seen: int
    unpriced_nodes: list[str]

    @property
    def total_cost(self) -> float:
        return sum(r.total_cost for r in self.rows)


@dataclass(frozen=True)
class MetricSample:
    """The hourly mean of one ``kubecost_*`` series, for the read endpoints."""

    cloud_account_id: str
    hour: int
    metric: str
    labels: dict[str, str]
    value: float
    samples: int


@dataclass
class _Pod:
    """A pod instance: (namespace, pod, uid) with its running interval."""

    namespace: str
    name: str
    uid: str
    start: float
    stop: float
    node: str = ""

    @property
    def running_hours(self) -> float:
        return (self.stop - self.start) / 3600.0

    def contains(self, t: float) -> bool:
        return self.start <= t < self.stop


def compute_hour(inp: HourInput) -> HourResult:
    """All rows and metric samples of one tenant-hour."""
    rows: list[ExpenseRow] = []
    unpriced: list[str] = []
    for cluster_id, series in split_by_cluster(inp).items():
        cluster = _ClusterHour(inp, cluster_id, series)
        rows.extend(cluster.rows())
        unpriced.extend(cluster.unpriced_nodes)
    return HourResult(rows=rows, metric_samples=hourly_metric_samples(inp), samples_seen=inp.values_read(),
                      unpriced_nodes=unpriced)


# -- Clusters ------------------------------------------------------------------------------------------------

def split_by_cluster(inp: HourInput) -> dict[str, dict[str, list[Series]]]:
    """Series grouped by their ``cluster_id`` label; unlabelled ones go to the cluster of kubecost_cluster_info."""
    default = ""
    for s in inp.of(KUBECOST_CLUSTER_INFO):
        if "cluster_id" not in s.labels:
            default = s.labels.get("id") or s.labels.get("name") or ""
            break
    clusters: dict[str, dict[str, list[Series]]] = defaultdict(lambda: defaultdict(list))
    for metric, group in inp.series.items():
        for s in group:
            clusters[s.labels.get("cluster_id") or default][metric].append(s)
    return clusters


# -- Hourly metric samples -----------------------------------------------------------------------------------

def hourly_metric_samples(inp: HourInput) -> list[MetricSample]:
    out = []
    for metric, group in sorted(inp.series.items()):
        if not metric.startswith(KEPT_PREFIX):
            continue
        for s in group:
            if isinstance(s, Summary):  # never for kubecost_* series, which the source always fetches as samples
                raise ValueError(f"{metric}: a summary where the hourly mean needs samples")
            inside = _window(s.samples, inp.start, inp.end)
            if inside:
                labels = {k: v for k, v in s.labels.items() if k != "__name__"}
                out.append(MetricSample(inp.tenant, inp.start, metric, labels, timeline.mean(inside), len(inside)))
    return out


def _samples(s: Series | Summary) -> list[tuple[float, float]]:
    """The samples of a series; a summary in their place is a bug of the source (``pods_needing_samples``)."""
    if isinstance(s, Summary):
        raise ValueError(f"a summary where the model needs samples: {dict(s.labels)}")
    return s.samples


def _window(samples, start: float, end: float) -> list[tuple[float, float]]:
    return [(t, v) for t, v in samples if start <= t < end]


class _ClusterHour:
    """The computation for one cluster of one tenant-hour."""

    def __init__(self, inp: HourInput, cluster_id: str, series: dict[str, list[Series]]):
        self.tenant, self.hour, self.step = inp.tenant, inp.start, inp.step
        self.start, self.end = float(inp.start), float(inp.end)
        self.cluster_id = cluster_id
        self.series: dict[str, list[Series]] = {}
        for metric, group in series.items():
            summaries = [s for s in group if isinstance(s, Summary)]  # already windowed by the source
            group = [s for s in group if isinstance(s, Series)]
            if metric in COUNTERS:
                windowed = [Series(s.labels, _counter_window(s.samples, self.start, self.end)) for s in group]
            else:
                windowed = [Series(s.labels, _window(s.samples, self.start, self.end)) for s in group]
            windowed = [s for s in windowed if s.samples] + summaries
            self.series[metric] = windowed if metric in LABEL_METRICS else deduplicate(metric, windowed)
        self.unpriced_nodes: list[str] = []
        self._rows: dict[tuple[str, ...], ExpenseRow] = {}
        self._prices: dict[tuple, float] = {}

    def of(self, metric: str) -> list[Series]:
        return self.series.get(metric, [])

    def by(self, metric: str, *keys: str) -> dict[tuple[str, ...], list[Series]]:
        grouped: dict[tuple[str, ...], list[Series]] = defaultdict(list)
        for s in self.of(metric):
            grouped[tuple(s.labels.get(k, "") for k in keys)].append(s)
        return grouped

    def row(self, namespace: str, kind: str, name: str, pod: str = "", node: str = "",
            labels: dict[str, str] | None = None) -> ExpenseRow:
        key = (self.cluster_id, namespace, kind, name, pod, node)
        if key not in self._rows:
            self._rows[key] = ExpenseRow(self.tenant, self.cluster_id, self.hour, namespace, kind, name, pod, node,
                                         labels=dict(labels or {}))
        return self._rows[key]

    # -- the whole computation ---------------------------------------------------------------------------------

    def rows(self) -> list[ExpenseRow]:
        prices = {resource: self._node_gauges(metric) for resource, metric in (
            ("cpu", NODE_CPU_HOURLY_COST), ("ram", NODE_RAM_HOURLY_COST), ("gpu", NODE_GPU_HOURLY_COST))}
        owners = Owners.from_series(self.of(KUBE_POD_OWNER), self.of(KUBE_REPLICASET_OWNER),
                                    self.of(KUBE_JOB_OWNER))
        namespace_labels, pod_labels = self._labels()
        pods = self._pods()
        allocated = self._allocate_containers(pods, prices, owners, namespace_labels, pod_labels)
        pv_paid = self._allocate_volumes(pods, owners, namespace_labels, pod_labels)
        self._allocate_network(pods, owners, namespace_labels, pod_labels)
        self._load_balancers(namespace_labels)
        self._management()
        self._unmounted(pv_paid)
        self._idle(prices, allocated)
        return list(self._rows.values())

    def _node_gauges(self, metric: str) -> dict[str, list[tuple[float, float]]]:
        return {s.labels.get("node", ""): s.samples for s in self.of(metric)}

    def _labels(self):
        def latest(group: list[Series | Summary]) -> dict[str, str]:
            # A summary is the only copy of its pod's labels (the source sends samples otherwise).
            newest = group[0] if len(group) == 1 else max(group, key=lambda s: (s.samples[-1][0],
                                                                                 sorted(s.labels.items())))
            return {k.removeprefix("label_"): v for k, v in newest.labels.items() if k.startswith("label_")}

        namespace_labels = {ns: latest(g) for (ns,), g in self.by(KUBE_NAMESPACE_LABELS, "namespace").items()}
        pod_labels = {key: latest(g) for key, g in self.by(KUBE_POD_LABELS, "namespace", "pod", "uid").items()}
        return namespace_labels, pod_labels

    def _pod_row(self, pod: _Pod, owners: Owners, namespace_labels, pod_labels) -> ExpenseRow:
        own_labels = pod_labels_of(pod_labels, pod)
        kind, name = resolve_workload(owners, pod.namespace, pod.name, own_labels)
        return self.row(pod.namespace, kind, name, pod.name, pod.node,
                        {**namespace_labels.get(pod.namespace, {}), **own_labels})

    # -- Pods --------------------------------------------------------------------------------------------------

    def _pods(self) -> dict[tuple[str, str], list[_Pod]]:
        """Pod instances by (namespace, pod): from running samples, else from allocation samples."""
        running: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        for s in self.of(RUNNING):
            key = (s.labels.get("namespace", ""), s.labels.get("pod", ""), s.labels.get("uid", ""))
            if isinstance(s, Summary):
                running[key].extend(t for t in (s.first, s.last) if t is not None)
            else:
                running[key].extend(t for t, v in s.samples if v > 0)
        pods: dict[tuple[str, str], list[_Pod]] = defaultdict(list)
        for (ns, name, uid), times in running.items():
            if times:
                pods[(ns, name)].append(_Pod(ns, name, uid, *timeline.span(times, self.step, self.end)))
        # Without any running series, the allocation samples tell when the pod ran; with running series that
        # are all 0, it did not run (pending, or its containers not running) and costs nothing.
        reported = {(ns, name) for ns, name, _ in running}
        fallback: dict[tuple[str, str], list[float]] = defaultdict(list)
        for metric in (CONTAINER_CPU_ALLOCATION, CONTAINER_MEMORY_ALLOCATION_BYTES, CONTAINER_GPU_ALLOCATION,
                       POD_PVC_ALLOCATION):
            for s in self.of(metric):
                key = (s.labels.get("namespace", ""), s.labels.get("pod", ""))
                if key not in reported:
                    fallback[key].extend(t for t, _ in _samples(s))
        for (ns, name), times in fallback.items():
            pods[(ns, name)].append(_Pod(ns, name, "", *timeline.span(times, self.step, self.end)))
        for instances in pods.values():
            instances.sort(key=lambda p: p.start)
        # The node of a pod: of its allocation series, else of its request series.
        for metric in (KUBE_POD_CONTAINER_RESOURCE_REQUESTS, CONTAINER_CPU_ALLOCATION,
                       CONTAINER_MEMORY_ALLOCATION_BYTES, CONTAINER_GPU_ALLOCATION):
            for s in self.of(metric):
                node = s.labels.get("node", "")
                for pod in self._owners_of_samples(pods, s):
                    pod.node = node or pod.node
        return pods

    def _owners_of_samples(self, pods, s: Series | Summary) -> list[_Pod]:
        instances = pods.get((s.labels.get("namespace", ""), s.labels.get("pod", "")), [])
        if len(instances) == 1:
            return list(instances)
        return [p for p in instances if any(p.contains(t) for t, _ in _samples(s))]

    @staticmethod
    def _samples_of(instances: list[_Pod], pod: _Pod, samples) -> list[tuple[float, float]]:
        """The samples of a container series that belong to ``pod`` (all of them if the name has one pod)."""
        if len(instances) == 1:
            return list(samples)
        return [(t, v) for t, v in samples if pod.contains(t)]

    @staticmethod
    def _mean_of(instances: list[_Pod], pod: _Pod, group: list[Series | Summary]) -> float:
        """Mean of the samples of ``group``'s series that belong to ``pod``; 0 without samples."""
        if len(group) == 1 and isinstance(group[0], Summary) and len(instances) == 1:
            return group[0].mean
        return timeline.mean([x for s in group for x in _ClusterHour._samples_of(instances, pod, _samples(s))])

    # -- CPU, RAM, GPU -----------------------------------------------------------------------------------------

    def _allocate_containers(self, pods, prices, owners, namespace_labels, pod_labels):
        """Pod rows with quantities and costs; returns per node the allocated (quantity-hours, cost) by resource."""
        allocation = {
            "cpu": self.by(CONTAINER_CPU_ALLOCATION, "namespace", "pod", "container"),
            "ram": self.by(CONTAINER_MEMORY_ALLOCATION_BYTES, "namespace", "pod", "container"),
            "gpu": self.by(CONTAINER_GPU_ALLOCATION, "namespace", "pod", "container"),
        }
        requests: dict[str, dict[tuple[str, str, str], list[Series]]] = {"cpu": defaultdict(list),
                                                                         "ram": defaultdict(list),
                                                                         "gpu": defaultdict(list)}
        for s in self.of(KUBE_POD_CONTAINER_RESOURCE_REQUESTS):
            kind = resource_kind(s.labels.get("resource", ""))
            if kind:
                requests[kind][(s.labels.get("namespace", ""), s.labels.get("pod", ""),
                                s.labels.get("container", ""))].append(s)
        containers: dict[tuple[str, str], set[str]] = defaultdict(set)
        for table in (*allocation.values(), *requests.values()):
            for ns, pod, container in table:
                containers[(ns, pod)].add(container)

        allocated = defaultdict(lambda: {"cpu": [0.0, 0.0], "ram": [0.0, 0.0], "gpu": [0.0, 0.0]})
        for (ns, name), instances in pods.items():
            for pod in instances:
                row = self._pod_row(pod, owners, namespace_labels, pod_labels)
                row.running_minutes += (pod.stop - pod.start) / 60.0
                for resource in ("cpu", "ram", "gpu"):
                    quantity = 0.0
                    for container in sorted(containers.get((ns, name), ())):
                        key = (ns, name, container)
                        quantity += max(self._mean_of(instances, pod, allocation[resource].get(key, [])),
                                        self._mean_of(instances, pod, requests[resource].get(key, [])))
                    quantity_hours = quantity * pod.running_hours
                    if quantity_hours == 0:
                        continue
                    node_prices = prices[resource].get(pod.node)
                    if node_prices is None and pod.node not in self.unpriced_nodes:
                        self.unpriced_nodes.append(pod.node)
                    price = self._price(resource, pod.node, node_prices or [], pod.start, pod.stop)
                    cost = quantity_hours * price / (GIB if resource == "ram" else 1.0)
                    if resource == "cpu":
                        row.cpu_core_hours += quantity_hours
                        row.cpu_cost += cost
                    elif resource == "ram":
                        row.ram_byte_hours += quantity_hours
                        row.ram_cost += cost
                    else:
                        row.gpu_hours += quantity_hours
                        row.gpu_cost += cost
                    allocated[pod.node][resource][0] += quantity_hours
                    allocated[pod.node][resource][1] += cost
        return allocated

    def _price(self, resource: str, node: str, prices, start: float, stop: float) -> float:
        """A node's price over a pod's running time; most pods of a node share one interval (the whole hour)."""
        key = (resource, node, start, stop)
        if key not in self._prices:
            self._prices[key] = timeline.time_weighted_mean(prices, start, stop)
        return self._prices[key]

    # -- Persistent volumes ------------------------------------------------------------------------------------

    def _allocate_volumes(self, pods, owners, namespace_labels, pod_labels) -> dict[str, list[float]]:
        """PV costs on pod rows; returns per volume what pods paid (byte-hours, cost)."""
        pv_prices = {s.labels.get("persistentvolume", ""): s.samples for s in self.of(PV_HOURLY_COST)}
        paid: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for s in self.of(POD_PVC_ALLOCATION):
            ns, name, volume = (s.labels.get(k, "") for k in ("namespace", "pod", "persistentvolume"))
            instances = pods.get((ns, name), [])
            for pod in instances:
                samples = self._samples_of(instances, pod, s.samples)
                if not samples:
                    continue
                byte_hours = timeline.mean(samples) * pod.running_hours
                cost = byte_hours / GIB * timeline.time_weighted_mean(pv_prices.get(volume, []), pod.start, pod.stop)
                row = self._pod_row(pod, owners, namespace_labels, pod_labels)
                row.pv_byte_hours += byte_hours
                row.pv_cost += cost
                paid[volume][0] += byte_hours
                paid[volume][1] += cost
        return paid

    def _unmounted(self, paid: dict[str, list[float]]) -> None:
        capacities = {s.labels.get("persistentvolume", ""): s.samples
                      for s in self.of(KUBE_PERSISTENTVOLUME_CAPACITY_BYTES)}
        for s in self.of(PV_HOURLY_COST):
            volume = s.labels.get("persistentvolume", "")
            capacity = capacities.get(volume)
            if not capacity:
                continue
            t0, t1 = timeline.span([t for t, _ in s.samples], self.step, self.end)
            cost = timeline.product_integral(capacity, s.samples, t0, t1) / GIB
            byte_hours = timeline.integral(capacity, t0, t1)
            paid_byte_hours, paid_cost = paid.get(volume, (0.0, 0.0))
            if cost - paid_cost > 1e-9 * cost:  # float residue of a fully claimed volume is not a row
                row = self.row(UNMOUNTED, "persistentvolume", volume)
                row.pv_cost += cost - paid_cost
                row.pv_byte_hours += max(0.0, byte_hours - paid_byte_hours)

    # -- Network -----------------------------------------------------------------------------------------------

    def _allocate_network(self, pods, owners, namespace_labels, pod_labels) -> None:
        price_of = {}
        for cls in ("zone", "region", "internet"):
            samples = sorted(x for s in self.of(f"kubecost_network_{cls}_egress_cost") for x in s.samples)
            price_of[cls] = timeline.time_weighted_mean(samples, self.start, self.end)
        for s in self.of(KUBECOST_POD_NETWORK_EGRESS_BYTES_TOTAL):
            labels = s.labels
            if labels.get("internet") == "true":
                price = price_of["internet"]
            elif labels.get("same_region") == "false":
                price = price_of["region"]
            elif labels.get("same_zone") == "false":
                price = price_of["zone"]
            else:
                continue
            cost = timeline.counter_increase(s.samples) / GIB * price
            if cost == 0:
                continue
            ns, name = labels.get("namespace", ""), labels.get("pod_name", "")
            instances = pods.get((ns, name))
            if instances:
                pod = max(instances, key=lambda p: p.stop - p.start)
            else:
                pod = _Pod(ns, name, "", self.start, self.start)
            self._pod_row(pod, owners, namespace_labels, pod_labels).network_cost += cost

    # -- Load balancers and cluster management -----------------------------------------------------------------

    def _active_cost(self, s: Series) -> float:
        """Integral of a $/hour gauge over its active interval."""
        t0, t1 = timeline.span([t for t, _ in s.samples], self.step, self.end)
        return timeline.integral(s.samples, t0, t1)

    def _load_balancers(self, namespace_labels) -> None:
        for s in self.of(KUBECOST_LOAD_BALANCER_COST):
            ns, service = s.labels.get("namespace", ""), s.labels.get("service_name", "")
            self.row(ns, "service", service, labels=namespace_labels.get(ns, {})).lb_cost += self._active_cost(s)

    def _management(self) -> None:
        for s in self.of(KUBECOST_CLUSTER_MANAGEMENT_COST):
            self.row(MANAGEMENT, MANAGEMENT, MANAGEMENT).management_cost += self._active_cost(s)

    # -- Idle --------------------------------------------------------------------------------------------------

    def _idle(self, prices, allocated) -> None:
        capacity = {
            "cpu": self._node_gauges(KUBE_NODE_STATUS_CAPACITY_CPU_CORES),
            "ram": self._node_gauges(KUBE_NODE_STATUS_CAPACITY_MEMORY_BYTES),
            "gpu": self._node_gauges(NODE_GPU_COUNT),
        }
        for node, cpu_prices in sorted(prices["cpu"].items()):
            t0, t1 = timeline.span([t for t, _ in cpu_prices], self.step, self.end)
            row = self.row(IDLE, IDLE, IDLE, node=node)
            for resource in ("cpu", "ram", "gpu"):
                amount = capacity[resource].get(node, [])
                scale = GIB if resource == "ram" else 1.0
                capacity_cost = timeline.product_integral(amount, prices[resource].get(node, []), t0, t1) / scale
                capacity_hours = timeline.integral(amount, t0, t1) if amount else 0.0
                used_hours, used_cost = allocated.get(node, {}).get(resource, (0.0, 0.0))
                idle_cost = max(0.0, capacity_cost - used_cost)
                idle_hours = max(0.0, capacity_hours - used_hours)
                if resource == "cpu":
                    row.cpu_cost, row.cpu_core_hours = idle_cost, idle_hours
                elif resource == "ram":
                    row.ram_cost, row.ram_byte_hours = idle_cost, idle_hours
                else:
                    row.gpu_cost, row.gpu_hours = idle_cost, idle_hours


def pod_labels_of(pod_labels, pod: _Pod) -> dict[str, str]:
    own = pod_labels.get((pod.namespace, pod.name, pod.uid))
    if own is None:  # uid unknown on one side: the labels of any pod of that name
        own = next((v for (ns, name, _), v in pod_labels.items() if (ns, name) == (pod.namespace, pod.name)), {})
    return own


def _counter_window(samples, start: float, end: float) -> list[tuple[float, float]]:
    """A counter's samples inside ``[start, end)`` plus the last one before ``start``."""
    before = [x for x in samples if x[0] < start]
    return before[-1:] + _window(samples, start, end)
