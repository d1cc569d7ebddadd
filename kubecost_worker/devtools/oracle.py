"""The ground-truth half of a ``Simulation``: the ``k8s_expenses`` rows and the ``k8s_nodes_hourly`` rows
``docs/model.md`` expects, derived from what the builder decided (its *intent*): it never reads the OpenMetrics file
back and never calls the cost model.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import MISSING, fields

# the column names and order only: the oracle never calls the model
from ..model.rows import COST_FIELDS, ExpenseRow, NodeRow
from .cluster import GiB, Container, Node, Pod, Service, TenantSim

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
        n, step = self.steps_per_hour, self.step
        nodes = {nd.name: nd for nd in t.nodes}
        volumes = {v.name: v for v in t.volumes}
        # row key -> {field: [parts]}; the key is (hour, namespace, kind, name, pod, node, container, uid)
        parts: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        fixed: dict[tuple, dict] = {}  # row key -> the values that are not sums: labels, service, usage...
        node_parts: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        vol_paid: dict[tuple, list[float]] = defaultdict(list)
        pod_rows: dict[tuple[int, str, str], list[tuple[float, tuple]]] = defaultdict(list)

        for p in t.pods:
            if p.pending:
                continue  # never ran: costs nothing
            nd = nodes[p.node]
            count = p.end - p.start
            cpu_usage = [c.cpu_usage(count) for c in p.containers]
            mem_usage = [c.mem_usage(count) for c in p.containers]
            cpu_allocs = [c.cpu_allocations(count, u) for c, u in zip(p.containers, cpu_usage)]
            mem_allocs = [c.mem_allocations(count, m) for c, m in zip(p.containers, mem_usage)]
            seen = [cpu_increments(c, count) for c in p.containers]
            labels = dict(t.namespace_labels.get(p.namespace, {}))
            labels.update(p.labels)
            service = service_of(p, t.services)
            price_source = "node" if nd.priced else "none"
            for h in range(p.start // n, (p.end - 1) // n + 1):
                a, b = max(p.start, h * n), min(p.end, (h + 1) * n)
                cnt = b - a
                hours = cnt * step / 3600
                i0, i1 = a - p.start, b - p.start
                cpu_price = fsum(nd.cpu_price[a:b]) / cnt
                ram_price = fsum(nd.ram_price[a:b]) / cnt
                gpu_price = fsum(nd.gpu_price[a:b]) / cnt
                for ci, c in enumerate(p.containers):
                    cpu_h = max(fsum(cpu_allocs[ci][i0:i1]) / cnt, c.cpu_request or 0.0) * hours
                    ram_h = max(fsum(mem_allocs[ci][i0:i1]) / cnt, c.mem_request or 0.0) * hours
                    gpu_h = float(c.gpu) * hours
                    costs = {"cpu_cost": cpu_h * cpu_price, "ram_cost": ram_h / GiB * ram_price,
                             "gpu_cost": gpu_h * gpu_price}
                    values = {"container": c.name, "pod_uid": p.uid, "service": service,
                              "price_source": price_source, "running_minutes": cnt * step / 60,
                              "cpu_core_hours": cpu_h, "ram_byte_hours": ram_h, "gpu_hours": gpu_h, **costs,
                              "cpu_request_core_hours": (c.cpu_request or 0.0) * hours,
                              "ram_request_byte_hours": (c.mem_request or 0.0) * hours}
                    if c.cpu_usage_series:
                        values["cpu_usage_core_hours"], values["cpu_usage_max_cores"] = cpu_usage_of_hour(
                            c, cpu_usage[ci], seen[ci], p.start, h * n, (h + 1) * n, step)
                    if c.mem_usage_series:
                        working_set = mem_usage[ci][i0:i1]
                        values["ram_usage_byte_hours"] = fsum(working_set) / cnt * hours
                        values["ram_usage_max_bytes"] = max(working_set)
                    key = (h, p.namespace, p.workload[0], p.workload[1], p.name, p.node, c.name, p.uid)
                    fixed[key] = dict(values, labels=labels)
                    npart = node_parts[(h, p.node)]
                    for fld in ("cpu_core_hours", "ram_byte_hours", "gpu_hours"):
                        npart[fld].append(values[fld])
                    for fld, cost in costs.items():
                        npart[fld].append(cost)
                # the pod's own row: what it pays as a whole (volumes, network)
                own = (h, p.namespace, p.workload[0], p.workload[1], p.name, p.node, "", p.uid)
                fixed.setdefault(own, {"pod_uid": p.uid, "service": service, "labels": labels})
                for _claim, volume, size in p.pvcs:
                    vol = volumes[volume]
                    bh = size * hours
                    cost = bh / GiB * vol.price
                    parts[own]["pv_byte_hours"].append(bh)
                    parts[own]["pv_cost"].append(cost)
                    vol_paid[(h, volume)].append(cost)
                    vol_paid[(h, volume, "bh")].append(bh)
                pod_rows[(h, p.namespace, p.name)].append((hours, own))

        # network: bytes of the hour from the last sample before it to the last one inside it, by class; traffic
        # inside a zone is free and not stored
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
                candidates = pod_rows.get((h, s.namespace, s.pod_name))
                if not candidates:
                    continue  # the simulation only puts counters on pods that always run
                best = candidates[0]
                for c in candidates[1:]:
                    if c[0] > best[0]:
                        best = c
                parts[best[1]][cost_column].append(egress / GiB * t.network_prices[key_price])
                parts[best[1]][bytes_column].append(egress)

        by_hour: dict[int, list[tuple]] = defaultdict(list)
        for key in fixed:
            if key[6] or key in parts:  # a pod's own row exists only where it pays something as a whole
                by_hour[key[0]].append(key)
        out: list[dict] = []
        node_out: list[dict] = []
        for h in range(self.hours):
            rows: list[dict] = []
            for key in by_hour.get(h, []):
                _, ns, kind, name, pod, node = key[:6]
                row = self._row(t, h, ns, kind, name, pod, node, dict(fixed[key]["labels"]),
                                **{k: v for k, v in fixed[key].items() if k != "labels"})
                for fld, vals in parts.get(key, {}).items():
                    row[fld] = fsum(vals)
                row["network_cost"] = fsum(row[c] for c, _ in _NETWORK_COLUMNS.values())
                rows.append(row)
            hr = self.hour_steps(h)
            hours_active = n * step / 3600
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
                    rows.append(row)
                node_out.append(self._node_row(t, h, nd, cap_cpu, cap_ram, cap_gpu, allocated, idle_cost))
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
            for row in rows:
                row["total_cost"] = fsum(row[f] for f in COST_FIELDS)
            rows.sort(key=lambda r: (r["namespace"], r["workload_kind"], r["workload_name"], r["pod"], r["node"],
                                     r["container"], r["pod_uid"]))
            out.extend(rows)
        return out, node_out

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
