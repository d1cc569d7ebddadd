"""Pods and their containers (``docs/model.md``, "Pods", "Rows", "CPU, RAM, GPU", "Services"): which pod instances
ran when and on which node, the labels, workload and service of their rows, and the quantity-hours, requests and
cost of each container resource."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..hours import HOUR
from . import timeline
from .cluster import ClusterHour, RowBook, samples_of
from .resources import RESOURCES, NodePrices, worst_source
from .rows import PRICE_NODE, ExpenseRow
from .series import (CONTAINER_CPU_ALLOCATION, CONTAINER_GPU_ALLOCATION, CONTAINER_MEMORY_ALLOCATION_BYTES,
                     KUBE_JOB_OWNER, KUBE_NAMESPACE_LABELS, KUBE_POD_CONTAINER_RESOURCE_REQUESTS, KUBE_POD_LABELS,
                     KUBE_POD_OWNER, KUBE_REPLICASET_OWNER, POD_PVC_ALLOCATION, RUNNING, SERVICE_SELECTOR_LABELS,
                     Series, Summary, resource_kind)
from .workload import Owners, resolve_workload


@dataclass
class Pod:
    """A pod instance: (namespace, pod, uid) with its running interval."""

    namespace: str
    name: str
    uid: str
    start: float
    stop: float
    node: str = ""

    @property
    def running_hours(self) -> float:
        return (self.stop - self.start) / HOUR

    def contains(self, t: float) -> bool:
        return self.start <= t < self.stop


Pods = dict[tuple[str, str], list[Pod]]  # (namespace, pod name) -> its instances, by start


def pod_instances(ctx: ClusterHour) -> Pods:
    """Pod instances by (namespace, pod): from running samples, else from allocation samples."""
    running: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for s in ctx.of(RUNNING):
        key = (s.labels.get("namespace", ""), s.labels.get("pod", ""), s.labels.get("uid", ""))
        if isinstance(s, Summary):
            running[key].extend(t for t in (s.first, s.last) if t is not None)
        else:
            running[key].extend(t for t, v in s.samples if v > 0)
    pods: Pods = defaultdict(list)
    for (ns, name, uid), times in running.items():
        if times:
            pods[(ns, name)].append(Pod(ns, name, uid, *timeline.span(times, ctx.step, ctx.end)))
    # Without any running series, the allocation samples tell when the pod ran; with running series that
    # are all 0, it did not run (pending, or its containers not running) and costs nothing.
    reported = {(ns, name) for ns, name, _ in running}
    fallback: dict[tuple[str, str], list[float]] = defaultdict(list)
    for metric in (CONTAINER_CPU_ALLOCATION, CONTAINER_MEMORY_ALLOCATION_BYTES, CONTAINER_GPU_ALLOCATION,
                   POD_PVC_ALLOCATION):
        for s in ctx.of(metric):
            key = (s.labels.get("namespace", ""), s.labels.get("pod", ""))
            if key not in reported:
                fallback[key].extend(t for t, _ in samples_of(s))
    for (ns, name), times in fallback.items():
        pods[(ns, name)].append(Pod(ns, name, "", *timeline.span(times, ctx.step, ctx.end)))
    for instances in pods.values():
        instances.sort(key=lambda p: p.start)
    # The node of a pod: of its allocation series, else of its request series.
    for metric in (KUBE_POD_CONTAINER_RESOURCE_REQUESTS, CONTAINER_CPU_ALLOCATION,
                   CONTAINER_MEMORY_ALLOCATION_BYTES, CONTAINER_GPU_ALLOCATION):
        for s in ctx.of(metric):
            node = s.labels.get("node", "")
            for pod in _instances_of_samples(pods, s):
                pod.node = node or pod.node
    return pods


def samples_in(instances: list[Pod], pod: Pod, samples) -> list[tuple[float, float]]:
    """The samples of a series of a pod name that belong to ``pod`` (all of them if the name has one pod)."""
    if len(instances) == 1:
        return list(samples)
    return [(t, v) for t, v in samples if pod.contains(t)]


def _instances_of_samples(pods: Pods, s: Series | Summary) -> list[Pod]:
    instances = pods.get((s.labels.get("namespace", ""), s.labels.get("pod", "")), [])
    if len(instances) <= 1:
        return instances  # not changed by the caller
    return [p for p in instances if any(p.contains(t) for t, _ in samples_of(s))]


def _mean_of(instances: list[Pod], pod: Pod, group: list[Series | Summary]) -> float:
    """Mean of the samples of ``group``'s series that belong to ``pod``; 0 without samples."""
    if not group:
        return 0.0
    if len(group) == 1 and isinstance(group[0], Summary) and len(instances) == 1:
        return group[0].mean
    return timeline.mean([x for s in group for x in samples_in(instances, pod, samples_of(s))])


class PodRows:
    """The rows of a pod instance: its workload (owners), labels (the namespace's, then the pod's) and service,
    on a row per container and the pod's own row (``container = ''``: volumes, network)."""

    def __init__(self, ctx: ClusterHour, book: RowBook):
        self.book = book
        self.owners = Owners.from_series(ctx.of(KUBE_POD_OWNER), ctx.of(KUBE_REPLICASET_OWNER), ctx.of(KUBE_JOB_OWNER))
        self.namespace_labels = {ns: labels for (ns,), labels in ctx.latest_labels(KUBE_NAMESPACE_LABELS,
                                                                                   "namespace").items()}
        self.pod_labels = ctx.latest_labels(KUBE_POD_LABELS, "namespace", "pod", "uid")
        self.selectors = services_by_namespace(ctx)
        # (namespace, pod, uid, start) -> the instance's workload kind and name, labels and service
        self._identities: dict[tuple, tuple[str, str, dict[str, str], str]] = {}
        # (namespace, pod, uid, start, container) -> the instance and its container's row, for the usage that follows
        self.containers: dict[tuple, tuple[Pod, ExpenseRow]] = {}

    def of(self, pod: Pod, container: str = "") -> ExpenseRow:
        kind, name, labels, service = self._identity(pod)
        return self.book.row(pod.namespace, kind, name, pod.name, pod.node, labels, container=container,
                             pod_uid=pod.uid, service=service)

    def container_row(self, pod: Pod, container: str) -> ExpenseRow:
        key = (pod.namespace, pod.name, pod.uid, pod.start, container)
        if key not in self.containers:
            self.containers[key] = (pod, self.of(pod, container))
        return self.containers[key][1]

    def _identity(self, pod: Pod) -> tuple[str, str, dict[str, str], str]:
        """What every row of a pod instance shares, resolved once for all of them."""
        key = (pod.namespace, pod.name, pod.uid, pod.start)
        if key not in self._identities:
            own_labels = self._own_labels(pod)
            kind, name = resolve_workload(self.owners, pod.namespace, pod.name, own_labels)
            self._identities[key] = (kind, name, {**self.namespace_labels.get(pod.namespace, {}), **own_labels},
                                     self._service(pod.namespace, own_labels))
        return self._identities[key]

    def _service(self, namespace: str, own_labels: dict[str, str]) -> str:
        services = self.selectors.get(namespace)
        return services.selecting(own_labels) if services is not None else ""

    def _own_labels(self, pod: Pod) -> dict[str, str]:
        own = self.pod_labels.get((pod.namespace, pod.name, pod.uid))
        if own is None:  # uid unknown on one side: the labels of any pod of that name
            own = next((v for (ns, name, _), v in self.pod_labels.items() if (ns, name) == (pod.namespace, pod.name)),
                       {})
        return own


class Services:
    """A namespace's Services (name, selector), by name, each findable by one label of its selector: a pod's
    candidates are the Services keyed by one of its labels, not every Service of the namespace (a namespace of
    hundreds of Services and thousands of pods would otherwise check every pair)."""

    def __init__(self, services: list[tuple[str, dict[str, str]]]):
        self.services = services
        self.keyed: dict[tuple[str, str], list[int]] = defaultdict(list)
        for k, (_, selector) in enumerate(services):
            if selector:  # an empty selector selects no pod
                self.keyed[min(selector.items())].append(k)

    def selecting(self, pod_labels: dict[str, str]) -> str:
        """The first Service by name whose selector is not empty and all of whose labels the pod has; '' for
        none."""
        candidates = sorted(k for item in pod_labels.items() for k in self.keyed.get(item, ()))
        for k in candidates:
            service, selector = self.services[k]
            if selector.items() <= pod_labels.items():
                return service
        return ""


def services_by_namespace(ctx: ClusterHour) -> dict[str, Services]:
    """Each Service's selector (the latest ``service_selector_labels`` series of it in the hour), by namespace."""
    selectors: dict[str, list[tuple[str, dict[str, str]]]] = defaultdict(list)
    for (ns, service), selector in sorted(ctx.latest_labels(SERVICE_SELECTOR_LABELS, "namespace",
                                                           "service").items()):
        selectors[ns].append((service, selector))
    return {ns: Services(services) for ns, services in selectors.items()}


Allocated = dict[str, dict[str, list[float]]]  # node -> resource -> [quantity-hours, cost] allocated to pods


def allocate_containers(ctx: ClusterHour, book: RowBook, pods: Pods, rows: PodRows, prices: NodePrices) -> Allocated:
    """A row per container of each pod instance with running minutes, quantities, requests and costs (a pod
    without any container series: its own row, with its running minutes); returns per node what pods were
    allocated."""
    allocation = {r.name: ctx.by(r.allocation, "namespace", "pod", "container") for r in RESOURCES}
    requests: dict[str, dict[tuple[str, str, str], list[Series | Summary]]] = {r.name: defaultdict(list)
                                                                               for r in RESOURCES}
    for s in ctx.of(KUBE_POD_CONTAINER_RESOURCE_REQUESTS):
        kind = resource_kind(s.labels.get("resource", ""))
        if kind:
            requests[kind][(s.labels.get("namespace", ""), s.labels.get("pod", ""),
                            s.labels.get("container", ""))].append(s)
    containers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for table in (*allocation.values(), *requests.values(), ctx.by(RUNNING, "namespace", "pod", "container")):
        for ns, pod, container in table:
            containers[(ns, pod)].add(container)

    price_over: dict[tuple, float] = {}  # most pods of a node share one interval (the whole hour)
    allocated: Allocated = defaultdict(lambda: {r.name: [0.0, 0.0] for r in RESOURCES})
    for (ns, name), instances in pods.items():
        names = sorted(containers.get((ns, name), ()))
        for pod in instances:
            minutes = (pod.stop - pod.start) / 60.0
            if not names:
                rows.of(pod).running_minutes += minutes
                continue
            for container in names:
                row = rows.container_row(pod, container)
                row.running_minutes += minutes
                key = (ns, name, container)
                sources = []
                for resource in RESOURCES:
                    requested = _mean_of(instances, pod, requests[resource.name].get(key, []))
                    quantity = max(_mean_of(instances, pod, allocation[resource.name].get(key, [])), requested)
                    if resource.request_field:
                        setattr(row, resource.request_field,
                                getattr(row, resource.request_field) + requested * pod.running_hours)
                    quantity_hours = quantity * pod.running_hours
                    if quantity_hours == 0:
                        continue
                    node_prices, source = prices.of(resource.name, pod.node)
                    sources.append(source)
                    if source != PRICE_NODE and pod.node not in book.unpriced_nodes:
                        book.unpriced_nodes.append(pod.node)
                    interval = (resource.name, pod.node, pod.start, pod.stop)
                    if interval not in price_over:
                        price_over[interval] = timeline.time_weighted_mean(node_prices, pod.start, pod.stop)
                    cost = quantity_hours * price_over[interval] / resource.per_unit
                    setattr(row, resource.quantity_field, getattr(row, resource.quantity_field) + quantity_hours)
                    setattr(row, resource.cost_field, getattr(row, resource.cost_field) + cost)
                    allocated[pod.node][resource.name][0] += quantity_hours
                    allocated[pod.node][resource.name][1] += cost
                row.price_source = worst_source(sources or [prices.of("cpu", pod.node)[1]])
    return allocated
