"""The ground-truth half of a ``Simulation``: the ``k8s_expenses`` rows and the ``k8s_nodes_hourly`` rows
``docs/model.md`` expects, derived from what the builder decided (its *intent*): it never reads the OpenMetrics file
back and never calls the cost model.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import MISSING, dataclass, field, fields

# the column names and order only: the oracle never calls the model
from ..model.rows import COST_FIELDS, ExpenseRow, NodeRow
from .cluster import GiB, Container, Node, Pod, Service, TenantSim, Volume

fsum = math.fsum

# Every column of an expense row with the value it has where nothing says otherwise (usage: None, NULL).
_ROW_DEFAULTS = {f.name: ({} if f.name == "labels" else f.default) for f in fields(ExpenseRow)
                 if f.default is not MISSING or f.name == "labels"}
_NODE_FIELDS = tuple(f.name for f in fields(NodeRow))
# what a row of each network class holds, by the simulator's price key
_NETWORK_COLUMNS = {cls: (f"network_{cls}_cost", f"network_{cls}_bytes") for cls in ("zone", "region", "internet")}
ZONE_LABELS = ("topology_kubernetes_io_zone", "failure_domain_beta_kubernetes_io_zone")  # the first present wins


def service_of(pod: Pod, services: list[Service]) -> str:
    """The Service selecting the pod: of its namespace, a non-empty selector within the pod's own labels; of
    several, the first by name (docs/model.md, "Services"); '' for none."""
    chosen = [s.name for s in services
              if s.namespace == pod.namespace and s.selector
              and all(pod.labels.get(k) == v for k, v in s.selector.items())]
    return min(chosen, default="")


def node_zone(node: Node) -> str:
    labels = node.labels or {}
    return next((labels[k] for k in ZONE_LABELS if k in labels), "")


def cpu_increments(c: Container, count: int) -> list[bool]:
    """For each running step ``j`` of the pod, whether the counter shows step ``j``'s usage as the difference (or,
    at a reset in the series, the value) of two consecutive samples of one series, ``j`` and ``j + 1``: not for the
    last step (no later sample), nor for the step before a restart into a new series (the new series' first
    sample has no predecessor)."""
    seen = [True] * (count - 1) + [False] if count else []
    if c.restart is not None and c.restart_new_series and c.restart < count:
        seen[c.restart - 1] = False
    return seen


def cpu_usage_of_hour(c: Container, usage: list[float], seen: list[bool], first_step: int, hour_first: int,
                      hour_end: int, step: int) -> tuple[float, float | None]:
    """(core-hours, max cores) of the container in the hour ``[hour_first, hour_end)`` (global steps).

    The increase adds the pairs whose later sample is in the hour (the earlier one may be the last before it); the
    irate grid has the points ``hour_first + 1 ... hour_end - 1``, each the rate of the pair ending there. Where
    no grid point has a pair (a container seen once in the hour, or whose only pair ends at the hour's first
    sample), the maximum is None: the PromQL docs/model.md defines it by returns nothing there, and a peak of 0
    would read as an idle container."""
    increase, highest = [], None
    for j, u in enumerate(usage):
        later = first_step + j + 1
        if not seen[j] or not hour_first <= later < hour_end:
            continue
        increase.append(u * step)
        if later > hour_first:
            highest = u if highest is None else max(highest, u)
    return fsum(increase) / 3600, highest


@dataclass
class _ContainerSeries:
    """A container's per-step series over its pod's running steps, from the usage it regenerates."""

    cpu_usage: list[float]
    mem_usage: list[float]
    cpu_allocations: list[float]
    mem_allocations: list[float]
    seen: list[bool]  # whether each step's usage shows in the counter (cpu_increments)

    @classmethod
    def of(cls, c: Container, count: int) -> _ContainerSeries:
        cpu_usage, mem_usage = c.cpu_usage(count), c.mem_usage(count)
        return cls(cpu_usage, mem_usage, c.cpu_allocations(count, cpu_usage), c.mem_allocations(count, mem_usage),
                   cpu_increments(c, count))


@dataclass(frozen=True)
class _PodHour:
    """The global steps ``[first, end)`` of hour ``h`` a pod ran, and its node's mean prices over them."""

    h: int
    first: int
    end: int
    hours: float
    cpu_price: float
    ram_price: float
    gpu_price: float

    @property
    def count(self) -> int:
        return self.end - self.first

    @classmethod
    def of(cls, p: Pod, nd: Node, h: int, steps_per_hour: int, step: int) -> _PodHour:
        a, b = max(p.start, h * steps_per_hour), min(p.end, (h + 1) * steps_per_hour)
        cnt = b - a
        return cls(h, a, b, cnt * step / 3600, fsum(nd.cpu_price[a:b]) / cnt, fsum(nd.ram_price[a:b]) / cnt,
                   fsum(nd.gpu_price[a:b]) / cnt)


@dataclass
class _TenantParts:
    """What a tenant's pods add up to before rows are made. A row key is (hour, namespace, kind, name, pod, node,
    container, uid); a pod's own row has the container ''."""

    # row key -> {field: [parts]}, summed into the row
    sums: dict[tuple, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    # row key -> the values that are not sums: labels, service, usage...
    fixed: dict[tuple, dict] = field(default_factory=dict)
    # (hour, node) -> {field: [what its pods were allocated]}
    node_parts: dict[tuple[int, str], dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    # (hour, volume) -> [costs paid by pods]; (hour, volume, "bh") -> [byte-hours]
    vol_paid: dict[tuple, list[float]] = field(default_factory=lambda: defaultdict(list))
    # (hour, namespace, pod name) -> [(hours run, the pod's own row key)], for network counters keyed by pod name
    pod_rows: dict[tuple[int, str, str], list[tuple[float, tuple]]] = field(
        default_factory=lambda: defaultdict(list))

    def keys_by_hour(self) -> dict[int, list[tuple]]:
        """The keys of the rows to make, by hour: a pod's own row only where it pays something as a whole."""
        by_hour: dict[int, list[tuple]] = defaultdict(list)
        for key in self.fixed:
            if key[6] or key in self.sums:
                by_hour[key[0]].append(key)
        return by_hour


class GroundTruth:
    """Mixed into ``Simulation`` (``tenants``, ``start``, ``step``, ``steps_per_hour``, ``hour_steps``)."""

    # -- ground truth --------------------------------------------------------------------------------
    def ground_truth(self) -> list[dict]:
        """The k8s_expenses rows docs/model.md expects, from the simulation's intent: dicts of every
        ExpenseRow column plus total_cost."""
        self._compute_truth()
        return [dict(r, labels=dict(r["labels"])) for r in self._truth]

    def ground_truth_nodes(self) -> list[dict]:
        """The k8s_nodes_hourly rows docs/model.md expects: dicts of NodeRow's fields."""
        self._compute_truth()
        return [dict(r) for r in self._truth_nodes]

    def _compute_truth(self) -> None:
        if self._truth is None:
            rows: list[dict] = []
            nodes: list[dict] = []
            for t in self.tenants:
                tenant_rows, tenant_nodes = self._tenant_truth(t)
                rows.extend(tenant_rows)
                nodes.extend(tenant_nodes)
            self._truth, self._truth_nodes = rows, nodes

    def write_ground_truth(self, path) -> None:
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for row in self.ground_truth():
                fh.write(json.dumps(row, sort_keys=False) + "\n")

    def write_ground_truth_nodes(self, path) -> None:
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for row in self.ground_truth_nodes():
                fh.write(json.dumps(row, sort_keys=False) + "\n")

    def _row(self, t: TenantSim, h: int, namespace: str, kind: str, name: str, pod: str, node: str,
             labels: dict, **values) -> dict:
        row = {"cloud_account_id": t.tenant, "cluster_id": t.cluster_id, "hour": self.start + h * 3600,
               "namespace": namespace, "workload_kind": kind, "workload_name": name, "pod": pod, "node": node}
        row.update(_ROW_DEFAULTS)
        row["labels"] = labels
        row.update(values)
        row["total_cost"] = 0.0
        return row

    def _tenant_truth(self, t: TenantSim) -> tuple[list[dict], list[dict]]:
        parts = _TenantParts()
        nodes = {nd.name: nd for nd in t.nodes}
        volumes = {v.name: v for v in t.volumes}
        for p in t.pods:
            if not p.pending:  # never ran: costs nothing
                self._add_pod(t, p, nodes[p.node], volumes, parts)
        self._add_network(t, parts)
        by_hour = parts.keys_by_hour()
        out: list[dict] = []
        node_out: list[dict] = []
        for h in range(self.hours):
            rows = [self._pod_row(t, h, key, parts) for key in by_hour.get(h, [])]
            idle_rows, node_rows = self._node_truth(t, h, parts.node_parts)
            rows.extend(idle_rows)
            node_out.extend(node_rows)
            rows.extend(self._cluster_rows(t, h, parts.vol_paid))
            for row in rows:
                row["total_cost"] = fsum(row[f] for f in COST_FIELDS)
            rows.sort(key=lambda r: (r["namespace"], r["workload_kind"], r["workload_name"], r["pod"], r["node"],
                                     r["container"], r["pod_uid"]))
            out.extend(rows)
        return out, node_out

    def _add_pod(self, t: TenantSim, p: Pod, nd: Node, volumes: dict[str, Volume], parts: _TenantParts) -> None:
        """A pod's container rows and its own row (what it pays as a whole: volumes), hour by hour."""
        n = self.steps_per_hour
        count = p.end - p.start
        series = [_ContainerSeries.of(c, count) for c in p.containers]
        labels = dict(t.namespace_labels.get(p.namespace, {}))
        labels.update(p.labels)
        service = service_of(p, t.services)
        price_source = "node" if nd.priced else "none"
        for h in range(p.start // n, (p.end - 1) // n + 1):
            span = _PodHour.of(p, nd, h, n, self.step)
            for c, s in zip(p.containers, series):
                values, costs = self._container_hour(p, c, s, span, service, price_source)
                key = (h, p.namespace, p.workload[0], p.workload[1], p.name, p.node, c.name, p.uid)
                parts.fixed[key] = dict(values, labels=labels)
                node_part = parts.node_parts[(h, p.node)]
                for fld in ("cpu_core_hours", "ram_byte_hours", "gpu_hours"):
                    node_part[fld].append(values[fld])
                for fld, cost in costs.items():
                    node_part[fld].append(cost)
            own = (h, p.namespace, p.workload[0], p.workload[1], p.name, p.node, "", p.uid)
            parts.fixed.setdefault(own, {"pod_uid": p.uid, "service": service, "labels": labels})
            for _claim, volume, size in p.pvcs:
                vol = volumes[volume]
                byte_hours = size * span.hours
                cost = byte_hours / GiB * vol.price
                parts.sums[own]["pv_byte_hours"].append(byte_hours)
                parts.sums[own]["pv_cost"].append(cost)
                parts.vol_paid[(h, volume)].append(cost)
                parts.vol_paid[(h, volume, "bh")].append(byte_hours)
            parts.pod_rows[(h, p.namespace, p.name)].append((span.hours, own))

    def _container_hour(self, p: Pod, c: Container, s: _ContainerSeries, span: _PodHour, service: str,
                        price_source: str) -> tuple[dict, dict[str, float]]:
        """The values of a container's row for the part of the hour its pod ran, and its costs (which its node's
        allocated cost adds up)."""
        n, cnt, hours = self.steps_per_hour, span.count, span.hours
        i0, i1 = span.first - p.start, span.end - p.start
        cpu_h = max(fsum(s.cpu_allocations[i0:i1]) / cnt, c.cpu_request or 0.0) * hours
        ram_h = max(fsum(s.mem_allocations[i0:i1]) / cnt, c.mem_request or 0.0) * hours
        gpu_h = float(c.gpu) * hours
        costs = {"cpu_cost": cpu_h * span.cpu_price, "ram_cost": ram_h / GiB * span.ram_price,
                 "gpu_cost": gpu_h * span.gpu_price}
        values = {"container": c.name, "pod_uid": p.uid, "service": service,
                  "price_source": price_source, "running_minutes": cnt * self.step / 60,
                  "cpu_core_hours": cpu_h, "ram_byte_hours": ram_h, "gpu_hours": gpu_h, **costs,
                  "cpu_request_core_hours": (c.cpu_request or 0.0) * hours,
                  "ram_request_byte_hours": (c.mem_request or 0.0) * hours}
        if c.cpu_usage_series:
            values["cpu_usage_core_hours"], values["cpu_usage_max_cores"] = cpu_usage_of_hour(
                c, s.cpu_usage, s.seen, p.start, span.h * n, (span.h + 1) * n, self.step)
        if c.mem_usage_series:
            working_set = s.mem_usage[i0:i1]
            values["ram_usage_byte_hours"] = fsum(working_set) / cnt * hours
            values["ram_usage_max_bytes"] = max(working_set)
        return values, costs

    def _add_network(self, t: TenantSim, parts: _TenantParts) -> None:
        """Egress of each priced class, on the row of the pod that ran longest in the hour under the counter's pod
        name: the bytes from the last sample before the hour to the last one inside it. Traffic inside a zone is
        free and not stored."""
        n = self.steps_per_hour
        for s in t.network:
            key_price = s.price_key
            if key_price is None:
                continue
            cost_column, bytes_column = _NETWORK_COLUMNS[key_price]
            for h in range(self.hours):
                lo = max(0, h * n - 1)
                hi = (h + 1) * n - 1
                v = s.values
                inc = [v[k] - v[k - 1] if v[k] >= v[k - 1] else v[k] for k in range(lo + 1, hi + 1)]
                egress = fsum(inc)
                candidates = parts.pod_rows.get((h, s.namespace, s.pod_name))
                if not candidates:
                    continue  # the simulation only puts counters on pods that always run
                best = candidates[0]
                for c in candidates[1:]:
                    if c[0] > best[0]:
                        best = c
                parts.sums[best[1]][cost_column].append(egress / GiB * t.network_prices[key_price])
                parts.sums[best[1]][bytes_column].append(egress)

    def _pod_row(self, t: TenantSim, h: int, key: tuple, parts: _TenantParts) -> dict:
        _, ns, kind, name, pod, node = key[:6]
        fixed = parts.fixed[key]
        row = self._row(t, h, ns, kind, name, pod, node, dict(fixed["labels"]),
                        **{k: v for k, v in fixed.items() if k != "labels"})
        for fld, vals in parts.sums.get(key, {}).items():
            row[fld] = fsum(vals)
        row["network_cost"] = fsum(row[c] for c, _ in _NETWORK_COLUMNS.values())
        return row

    def _node_truth(self, t: TenantSim, h: int,
                    node_parts: dict[tuple[int, str], dict[str, list[float]]]) -> tuple[list[dict], list[dict]]:
        """The hour's idle rows (a priced node's capacity less what its pods were allocated) and node rows."""
        step, hr = self.step, self.hour_steps(h)
        idle_rows, node_rows = [], []
        for nd in t.nodes:
            cap_cpu = fsum(nd.cpu_cores * nd.cpu_price[k] * step / 3600 for k in hr)
            cap_ram = fsum(nd.mem_bytes / GiB * nd.ram_price[k] * step / 3600 for k in hr)
            cap_gpu = fsum(nd.gpus * nd.gpu_price[k] * step / 3600 for k in hr)
            used = node_parts.get((h, nd.name), {})
            allocated = fsum([*used.get("cpu_cost", []), *used.get("ram_cost", []), *used.get("gpu_cost", [])])
            idle_cost = 0.0
            if nd.priced:  # a node without a CPU price (and no default price) has no idle row
                cap_cpu_h = fsum(nd.cpu_cores * step / 3600 for _ in hr)
                cap_ram_h = fsum(nd.mem_bytes * step / 3600 for _ in hr)
                cap_gpu_h = fsum(nd.gpus * step / 3600 for _ in hr)
                row = self._row(t, h, "__idle__", "__idle__", "__idle__", "", nd.name, {}, price_source="node")
                row["cpu_cost"] = max(0.0, cap_cpu - fsum(used.get("cpu_cost", [])))
                row["ram_cost"] = max(0.0, cap_ram - fsum(used.get("ram_cost", [])))
                row["gpu_cost"] = max(0.0, cap_gpu - fsum(used.get("gpu_cost", [])))
                row["cpu_core_hours"] = max(0.0, cap_cpu_h - fsum(used.get("cpu_core_hours", [])))
                row["ram_byte_hours"] = max(0.0, cap_ram_h - fsum(used.get("ram_byte_hours", [])))
                row["gpu_hours"] = max(0.0, cap_gpu_h - fsum(used.get("gpu_hours", [])))
                idle_cost = fsum([row["cpu_cost"], row["ram_cost"], row["gpu_cost"]])
                idle_rows.append(row)
            node_rows.append(self._node_row(t, h, nd, cap_cpu, cap_ram, cap_gpu, allocated, idle_cost))
        return idle_rows, node_rows

    def _cluster_rows(self, t: TenantSim, h: int, vol_paid: dict[tuple, list[float]]) -> list[dict]:
        """The hour's rows of no pod: cluster management, load balancers, and volumes (or the part of them) that
        no pod paid for."""
        hours_active = self.steps_per_hour * self.step / 3600
        rows = []
        row = self._row(t, h, "__cluster_management__", "__cluster_management__", "__cluster_management__",
                        "", "", {})
        row["management_cost"] = t.management_price * hours_active
        rows.append(row)
        for lb in t.load_balancers:
            row = self._row(t, h, lb.namespace, "service", lb.service, "", "",
                            dict(t.namespace_labels.get(lb.namespace, {})), service=lb.service)
            row["lb_cost"] = lb.price * hours_active
            rows.append(row)
        for vol in t.volumes:
            cost = vol.capacity / GiB * vol.price * hours_active
            unpaid = cost - fsum(vol_paid.get((h, vol.name), []))
            if unpaid > 1e-9 * cost:
                row = self._row(t, h, "__unmounted__", "persistentvolume", vol.name, "", "", {})
                row["pv_cost"] = unpaid
                row["pv_byte_hours"] = max(0.0, vol.capacity * hours_active
                                           - fsum(vol_paid.get((h, vol.name, "bh"), [])))
                rows.append(row)
        return rows

    def _node_row(self, t: TenantSim, h: int, nd: Node, cpu_cost: float, ram_cost: float, gpu_cost: float,
                  allocated: float, idle_cost: float) -> dict:
        """A node as an asset for the hour. Its price series (absent on the unpriced node) carry its provider id,
        type, region and architecture, and are what kubecost_node_is_spot and node_gpu_count come with."""
        n, hr = self.steps_per_hour, self.hour_steps(h)
        priced = nd.priced
        row = {
            "cloud_account_id": t.tenant, "cluster_id": t.cluster_id, "hour": self.start + h * 3600, "node": nd.name,
            "provider_id": nd.provider_id if priced else "", "instance_type": nd.instance_type if priced else "",
            "region": nd.region if priced else "", "zone": node_zone(nd), "arch": nd.arch if priced else "",
            "spot": nd.spot and priced,
            "running_minutes": n * self.step / 60,  # price (else capacity) series at every step
            "cpu_cores": nd.cpu_cores, "ram_bytes": nd.mem_bytes, "gpu_count": float(nd.gpus) if priced else 0.0,
            "cpu_price": fsum(nd.cpu_price[k] for k in hr) / n if priced else 0.0,
            "ram_price": fsum(nd.ram_price[k] for k in hr) / n if priced else 0.0,
            "gpu_price": fsum(nd.gpu_price[k] for k in hr) / n if priced else 0.0,
            "price_source": "node" if priced else "none",
            "cpu_cost": cpu_cost, "ram_cost": ram_cost, "gpu_cost": gpu_cost,
            "allocated_cost": allocated, "idle_cost": idle_cost,
        }
        assert tuple(row) == _NODE_FIELDS, "NodeRow's fields changed: the node ground truth follows them"
        return row
