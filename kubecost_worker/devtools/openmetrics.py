"""The OpenMetrics half of a ``Simulation``: every series of every tenant, family by family, streamed to a file
for ``promtool tsdb create-blocks-from openmetrics``. It writes what the builder decided and never prices anything.
"""

from __future__ import annotations

import math
import random
from typing import Iterable, Iterator

from .cluster import GiB, Pod, TenantSim, format_labels

_Series = tuple[str, Iterable[int], "list[float] | float"]  # label string, steps, values (or a constant)

# the pause container of every pod: what cAdvisor reports as container="POD"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
PAUSE_CORES = 0.0005
PAUSE_BYTES = 1_052_672.0


def pause_id(pod_uid: str) -> str:
    return f"{random.Random(f'{pod_uid}|pause').getrandbits(256):064x}"


class OpenMetricsWriter:
    """Mixed into ``Simulation`` (``tenants``, ``start``, ``step``, ``total_steps``, ``hour_steps``)."""

    # -- OpenMetrics -------------------------------------------------------------------------------
    def write_openmetrics(self, path) -> int:
        """Write every series, family by family, streaming. Returns the number of samples."""
        ends = [f" {self.start + k * self.step}\n" for k in range(self.total_steps)]  # " <timestamp>\n" per step
        samples = 0
        series = 0
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for name, mtype, gen in self._families():
                typed = False
                for labels, steps, values in gen():
                    if not typed:
                        fh.write(f"# TYPE {name} {mtype}\n")
                        typed = True
                    prefix = f"{name}{{{labels}}} "
                    if isinstance(values, (int, float)):
                        values = float(values)
                    if isinstance(values, float):
                        line_start = prefix + repr(values)
                        # a constant over a range of steps (most series): the lines joined in one C call
                        stamps = ends[steps.start:steps.stop] if isinstance(steps, range) and steps.step == 1 \
                            else [ends[k] for k in steps]
                        count = len(stamps)
                        text = line_start + line_start.join(stamps) if stamps else ""
                    else:
                        chunk = [f"{prefix}{v!r}{ends[k]}" for k, v in zip(steps, values)]
                        count = len(chunk)
                        text = "".join(chunk)
                    if not count:
                        continue
                    fh.write(text)
                    samples += count
                    series += 1
            fh.write("# EOF\n")
        self.series_written = series
        return samples

    def _families(self) -> list[tuple[str, str, callable]]:
        f = []
        g = "gauge"
        f.append(("kubecost_cluster_info", g, self._gen_cluster_info))
        for metric, attr in (("node_cpu_hourly_cost", "cpu"), ("node_ram_hourly_cost", "ram"),
                             ("node_gpu_hourly_cost", "gpu"), ("node_gpu_count", "gpu_count"),
                             ("node_total_hourly_cost", "total"), ("kubecost_node_is_spot", "spot")):
            f.append((metric, g, lambda attr=attr: self._gen_node(attr)))
        f.append(("kube_node_labels", g, self._gen_node_labels))
        f.append(("kube_node_status_capacity_cpu_cores", g, lambda: self._gen_capacity("cpu")))
        f.append(("kube_node_status_capacity_memory_bytes", g, lambda: self._gen_capacity("mem")))
        f.append(("kube_namespace_labels", g, self._gen_namespace_labels))
        f.append(("kube_pod_container_status_running", g, self._gen_running))
        f.append(("container_cpu_allocation", g, lambda: self._gen_allocation("cpu")))
        f.append(("container_memory_allocation_bytes", g, lambda: self._gen_allocation("mem")))
        f.append(("container_gpu_allocation", g, lambda: self._gen_allocation("gpu")))
        f.append(("kube_pod_container_resource_requests", g, self._gen_requests))
        # counters are typed "unknown": an OpenMetrics counter family would have to drop the _total of its name
        f.append(("container_cpu_usage_seconds_total", "unknown", self._gen_cpu_usage))
        f.append(("container_memory_working_set_bytes", g, self._gen_working_set))
        f.append(("kube_pod_owner", g, self._gen_owner))
        f.append(("kube_replicaset_owner", g, self._gen_replicaset_owner))
        f.append(("kube_pod_labels", g, self._gen_pod_labels))
        f.append(("pod_pvc_allocation", g, self._gen_pvc))
        f.append(("pv_hourly_cost", g, lambda: self._gen_volume("price")))
        f.append(("kube_persistentvolume_capacity_bytes", g, lambda: self._gen_volume("capacity")))
        f.append(("service_selector_labels", g, self._gen_service_selectors))
        f.append(("kubecost_load_balancer_cost", g, self._gen_lb))
        f.append(("kubecost_cluster_management_cost", g, self._gen_management))
        for cls in ("zone", "region", "internet"):
            f.append((f"kubecost_network_{cls}_egress_cost", g, lambda cls=cls: self._gen_net_price(cls)))
        f.append(("kubecost_pod_network_egress_bytes_total", "unknown", self._gen_net_counter))
        f.append(("kubecost_savings_cpu_allocation", g, lambda: self._gen_savings("cpu")))
        f.append(("kubecost_savings_memory_allocation_bytes", g, lambda: self._gen_savings("mem")))
        return f

    @staticmethod
    def _tail(t: TenantSim, job: str = "kubecost") -> list[tuple[str, str]]:
        return [("job", job), ("tenant_id", t.tenant)]

    def _all(self) -> range:
        return range(self.total_steps)

    def _gen_cluster_info(self) -> Iterator[_Series]:
        for t in self.tenants:
            yield format_labels([("id", t.cluster_id), ("name", t.cluster_name), ("provider", "GCP"),
                                 ("provisioner", "GKE"), ("region", t.region)] + self._tail(t)), self._all(), 1.0

    def _gen_node(self, attr: str) -> Iterator[_Series]:
        for t in self.tenants:
            for nd in t.nodes:
                if not nd.priced:
                    continue  # the cost-model knows no price, nor anything else it derives from one, of this node
                labels = format_labels([("node", nd.name), ("instance", nd.name),
                                        ("instance_type", nd.instance_type), ("region", nd.region),
                                        ("provider_id", nd.provider_id), ("arch", nd.arch)] + self._tail(t))
                if attr == "cpu":
                    yield labels, self._all(), nd.cpu_price
                elif attr == "ram":
                    yield labels, self._all(), nd.ram_price
                elif attr == "gpu":
                    yield labels, self._all(), nd.gpu_price
                elif attr == "gpu_count":
                    yield labels, self._all(), float(nd.gpus)
                elif attr == "spot":
                    yield labels, self._all(), 1.0 if nd.spot else 0.0
                else:
                    yield labels, self._all(), [
                        nd.cpu_cores * c + nd.mem_bytes / GiB * r + nd.gpus * g
                        for c, r, g in zip(nd.cpu_price, nd.ram_price, nd.gpu_price)]

    def _gen_node_labels(self) -> Iterator[_Series]:
        for t in self.tenants:
            for nd in t.nodes:
                if nd.labels is not None:
                    pairs = [("node", nd.name)] + [(f"label_{k}", v) for k, v in sorted(nd.labels.items())]
                    yield format_labels(pairs + self._tail(t, "kube-state-metrics")), self._all(), 1.0

    def _gen_capacity(self, what: str) -> Iterator[_Series]:
        for t in self.tenants:
            for nd in t.nodes:
                yield (format_labels([("node", nd.name)] + self._tail(t)), self._all(),
                       nd.cpu_cores if what == "cpu" else nd.mem_bytes)

    def _gen_namespace_labels(self) -> Iterator[_Series]:
        for t in self.tenants:
            for ns, labels in t.namespace_labels.items():
                pairs = [("namespace", ns)] + [(f"label_{k}", v) for k, v in sorted(labels.items())]
                yield format_labels(pairs + self._tail(t)), self._all(), 1.0

    @staticmethod
    def _jobs(p: Pod) -> tuple[str, ...]:
        return ("kube-state-metrics", "kubecost") if p.duplicate else ("kubecost",)

    def _gen_running(self) -> Iterator[_Series]:
        for t in self.tenants:
            for p in t.pods:
                if p.pending:
                    continue
                for c in p.containers:
                    for job in self._jobs(p):
                        yield (format_labels([("namespace", p.namespace), ("pod", p.name), ("container", c.name),
                                              ("uid", p.uid)] + self._tail(t, job)),
                               range(p.start, p.end), 1.0)

    @staticmethod
    def _groups(t: TenantSim) -> Iterator[list[Pod]]:
        """Running pods grouped by (namespace, name), in first-appearance order, each sorted by start.
        Series without a uid label of the pods of one group are one series."""
        groups: dict[tuple[str, str], list[Pod]] = {}
        for p in t.pods:
            if not p.pending:
                groups.setdefault((p.namespace, p.name), []).append(p)
        for g in groups.values():
            yield sorted(g, key=lambda p: p.start)

    def _merged(self, items: Iterable[tuple[str, int, int, "list[float] | float"]]) -> Iterator[_Series]:
        """Merge (labels, start, end, values) parts that share a label string into one series."""
        merged: dict[str, tuple[list[int], list[float]]] = {}
        order = []
        for labels, s, e, values in items:
            if labels not in merged:
                merged[labels] = ([], [])
                order.append(labels)
            steps, vals = merged[labels]
            steps.extend(range(s, e))
            vals.extend(values if isinstance(values, list) else [values] * (e - s))
        for labels in order:
            steps, vals = merged[labels]
            yield labels, steps, vals

    def _gen_allocation(self, what: str) -> Iterator[_Series]:
        for t in self.tenants:
            for group in self._groups(t):
                parts = []
                for p in group:
                    count = p.end - p.start
                    for c in p.containers:
                        labels = format_labels([("namespace", p.namespace), ("pod", p.name), ("container", c.name),
                                                ("node", p.node), ("instance", p.node)] + self._tail(t))
                        if what == "cpu":
                            values = c.cpu_allocations(count)
                        elif what == "mem":
                            values = c.mem_allocations(count)
                        else:
                            values = float(c.gpu)
                        parts.append((labels, p.start, p.end, values))
                if len(parts) == 1 or len(group) == 1:
                    for labels, s, e, values in parts:
                        yield labels, range(s, e), values
                else:
                    yield from self._merged(parts)

    def _gen_requests(self) -> Iterator[_Series]:
        for t in self.tenants:
            for p in t.pods:
                for c in p.containers:
                    for resource, unit, value in (("cpu", "core", c.cpu_request), ("memory", "byte", c.mem_request),
                                                  ("nvidia_com_gpu", "integer", float(c.gpu) if c.gpu else None)):
                        if value is None:
                            continue
                        for job in self._jobs(p):
                            pairs = [("namespace", p.namespace), ("pod", p.name), ("container", c.name)]
                            if p.node is not None:
                                pairs.append(("node", p.node))
                            pairs += [("resource", resource), ("unit", unit), ("uid", p.uid)]
                            yield format_labels(pairs + self._tail(t, job)), range(p.start, p.end), float(value)

    def _cadvisor_labels(self, t: TenantSim, p: Pod, container: str, cgroup: str | None, image: str) -> str:
        pairs = [("namespace", p.namespace), ("pod", p.name), ("container", container)]
        if cgroup is not None:
            pairs.append(("id", cgroup))
        pairs += [("image", image), ("node", p.node), ("instance", p.node)]
        return format_labels(pairs + self._tail(t, "kubelet"))

    def _container_series(self, t: TenantSim, p: Pod, c, values: list[float]) -> Iterator[_Series]:
        """A container's cAdvisor series: one, two around a restart into a new cgroup, or one without ``id``
        through a restart (the drop is in the series)."""
        before, after = c.cgroup_ids(p.uid)
        r = c.restart
        if r is None:
            yield self._cadvisor_labels(t, p, c.name, before, c.image), range(p.start, p.end), values
        elif c.restart_new_series:
            yield self._cadvisor_labels(t, p, c.name, before, c.image), range(p.start, p.start + r), values[:r]
            yield self._cadvisor_labels(t, p, c.name, after, c.image), range(p.start + r, p.end), values[r:]
        else:
            yield self._cadvisor_labels(t, p, c.name, None, c.image), range(p.start, p.end), values

    def _gen_cpu_usage(self) -> Iterator[_Series]:
        """Each container's counter, and the traps: the pod's whole cgroup (container="", the sum of all its
        containers, those without a series of their own included) and its pause container (container="POD")."""
        step = self.step
        for t in self.tenants:
            for p in t.pods:
                if p.pending:
                    continue
                count = p.end - p.start
                usages = [c.cpu_usage(count) for c in p.containers]
                for c, usage in zip(p.containers, usages):
                    if c.cpu_usage_series:
                        yield from self._container_series(t, p, c, c.cpu_counter(usage, step))
                pause_start = PAUSE_CORES * step * 50 if p.start == 0 else 0.0
                pod_total, pause = [], []
                v = pause_start + sum(c.cpu_counter_start for c in p.containers)
                w = pause_start
                for used in zip(*usages):
                    pod_total.append(v)
                    pause.append(w)
                    v += (sum(used) + PAUSE_CORES) * step
                    w += PAUSE_CORES * step
                root = f"/kubepods/burstable/pod{p.uid}"
                yield self._cadvisor_labels(t, p, "", root, ""), range(p.start, p.end), pod_total
                yield (self._cadvisor_labels(t, p, "POD", f"{root}/{pause_id(p.uid)}", PAUSE_IMAGE),
                       range(p.start, p.end), pause)

    def _gen_working_set(self) -> Iterator[_Series]:
        for t in self.tenants:
            for p in t.pods:
                if p.pending:
                    continue
                count = p.end - p.start
                usages = [c.mem_usage(count) for c in p.containers]
                for c, usage in zip(p.containers, usages):
                    if c.mem_usage_series:
                        yield from self._container_series(t, p, c, usage)
                pod_total = [sum(used) + PAUSE_BYTES for used in zip(*usages)]
                root = f"/kubepods/burstable/pod{p.uid}"
                yield self._cadvisor_labels(t, p, "", root, ""), range(p.start, p.end), pod_total
                yield (self._cadvisor_labels(t, p, "POD", f"{root}/{pause_id(p.uid)}", PAUSE_IMAGE),
                       range(p.start, p.end), PAUSE_BYTES)

    def _gen_owner(self) -> Iterator[_Series]:
        for t in self.tenants:
            for group in self._groups(t):
                parts = []
                for p in group:
                    if p.owner is None:
                        continue
                    for job in self._jobs(p):
                        labels = format_labels([("namespace", p.namespace), ("pod", p.name), ("owner_kind", p.owner[0]),
                                                ("owner_name", p.owner[1]), ("owner_is_controller", "true")]
                                               + self._tail(t, job))
                        parts.append((labels, p.start, p.end, 1.0))
                if len(group) == 1:
                    for labels, s, e, v in parts:
                        yield labels, range(s, e), v
                else:
                    yield from self._merged(parts)

    def _gen_replicaset_owner(self) -> Iterator[_Series]:
        for t in self.tenants:
            for rs in t.replicasets:
                if rs.emit_owner and rs.end > rs.start:
                    yield (format_labels([("namespace", rs.namespace), ("replicaset", rs.name),
                                          ("owner_kind", "Deployment"), ("owner_name", rs.deployment)]
                                         + self._tail(t)), range(rs.start, rs.end), 1.0)

    def _gen_pod_labels(self) -> Iterator[_Series]:
        for t in self.tenants:
            for p in t.pods:
                if p.pending or not p.labels:
                    continue
                pairs = [("namespace", p.namespace), ("pod", p.name), ("uid", p.uid)]
                pairs += [(f"label_{k}", v) for k, v in sorted(p.labels.items())]
                yield format_labels(pairs + self._tail(t)), range(p.start, p.end), 1.0

    def _gen_pvc(self) -> Iterator[_Series]:
        for t in self.tenants:
            for group in self._groups(t):
                parts = []
                for p in group:
                    for claim, volume, size in p.pvcs:
                        labels = format_labels([("namespace", p.namespace), ("pod", p.name),
                                                ("persistentvolumeclaim", claim), ("persistentvolume", volume)]
                                               + self._tail(t))
                        parts.append((labels, p.start, p.end, float(size)))
                yield from self._merged(parts)

    def _gen_volume(self, what: str) -> Iterator[_Series]:
        for t in self.tenants:
            for v in t.volumes:
                if what == "price":
                    yield (format_labels([("volumename", v.name), ("persistentvolume", v.name),
                                          ("provider_id", v.provider_id or v.name)] + self._tail(t)),
                           self._all(), v.price)
                else:
                    yield (format_labels([("persistentvolume", v.name)] + self._tail(t)), self._all(),
                           float(v.capacity))

    def _gen_service_selectors(self) -> Iterator[_Series]:
        for t in self.tenants:
            for svc in t.services:
                pairs = [("namespace", svc.namespace), ("service", svc.name)]
                pairs += [(f"label_{k}", v) for k, v in sorted(svc.selector.items())]
                yield format_labels(pairs + self._tail(t)), self._all(), 1.0

    def _gen_lb(self) -> Iterator[_Series]:
        for t in self.tenants:
            for lb in t.load_balancers:
                yield (format_labels([("namespace", lb.namespace), ("service_name", lb.service),
                                      ("ingress_ip", lb.ingress_ip)] + self._tail(t)), self._all(), lb.price)

    def _gen_management(self) -> Iterator[_Series]:
        for t in self.tenants:
            yield format_labels([("provisioner_name", "GKE")] + self._tail(t)), self._all(), t.management_price

    def _gen_net_price(self, cls: str) -> Iterator[_Series]:
        for t in self.tenants:
            yield format_labels(self._tail(t)), self._all(), t.network_prices[cls]

    def _gen_net_counter(self) -> Iterator[_Series]:
        for t in self.tenants:
            for s in t.network:
                yield (format_labels([("namespace", s.namespace), ("pod_name", s.pod_name), ("internet", s.internet),
                                      ("same_zone", s.same_zone), ("same_region", s.same_region)]
                                     + self._tail(t, "kubecost-network-costs")), self._all(), s.values)

    def _gen_savings(self, what: str) -> Iterator[_Series]:
        for t in self.tenants:
            for ds in ("true", "false"):
                rng = random.Random(f"{t.savings_key}|{what}|{ds}")
                scale = 0.5 if what == "cpu" else float(GiB)
                v = scale * (1 + rng.random())
                values = []
                for _ in range(self.total_steps):
                    v = max(0.0, v + scale * rng.uniform(-0.05, 0.05))
                    values.append(round(v, 4) if what == "cpu" else float(math.floor(v)))
                yield format_labels([("daemonset", ds)] + self._tail(t)), self._all(), values
