"""The ground-truth half of a ``Simulation``: the ``k8s_expenses`` rows ``docs/model.md`` expects, derived from
what the builder decided (its *intent*): it never reads the OpenMetrics file back and never calls the cost model.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

from ..model.rows import COST_FIELDS  # the column names only: the oracle never calls the model
from .cluster import GiB, TenantSim


class GroundTruth:
    """Mixed into ``Simulation`` (``tenants``, ``start``, ``step``, ``steps_per_hour``, ``hour_steps``)."""

    # -- ground truth --------------------------------------------------------------------------------
    def ground_truth(self) -> list[dict]:
        """The k8s_expenses rows docs/model.md expects, from the simulation's intent."""
        if self._truth is None:
            rows: list[dict] = []
            for t in self.tenants:
                rows.extend(self._tenant_truth(t))
            self._truth = rows
        return [dict(r, labels=dict(r["labels"])) for r in self._truth]

    def write_ground_truth(self, path) -> None:
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for row in self.ground_truth():
                fh.write(json.dumps(row, sort_keys=False) + "\n")

    def _row(self, t: TenantSim, h: int, namespace: str, kind: str, name: str, pod: str, node: str,
             labels: dict) -> dict:
        return {
            "cloud_account_id": t.tenant, "cluster_id": t.cluster_id, "hour": self.start + h * 3600,
            "namespace": namespace, "workload_kind": kind, "workload_name": name, "pod": pod, "node": node,
            "cpu_core_hours": 0.0, "ram_byte_hours": 0.0, "gpu_hours": 0.0, "pv_byte_hours": 0.0,
            "cpu_cost": 0.0, "ram_cost": 0.0, "gpu_cost": 0.0, "pv_cost": 0.0, "network_cost": 0.0,
            "lb_cost": 0.0, "management_cost": 0.0, "total_cost": 0.0, "labels": labels,
        }

    def _tenant_truth(self, t: TenantSim) -> list[dict]:
        n, step = self.steps_per_hour, self.step
        fsum = math.fsum
        nodes = {nd.name: nd for nd in t.nodes}
        volumes = {v.name: v for v in t.volumes}
        # key -> {field: [parts]}
        parts: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        meta: dict[tuple, tuple] = {}
        node_parts: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        vol_paid: dict[tuple[int, str], list[float]] = defaultdict(list)
        pod_rows: dict[tuple[int, str, str], list[tuple[float, tuple]]] = defaultdict(list)

        for p in t.pods:
            if p.pending:
                continue  # never ran: costs nothing
            nd = nodes[p.node]
            count = p.end - p.start
            cpu_allocs = [c.cpu_allocations(count) for c in p.containers]
            mem_allocs = [c.mem_allocations(count) for c in p.containers]
            labels = dict(t.namespace_labels.get(p.namespace, {}))
            labels.update(p.labels)
            for h in range(p.start // n, (p.end - 1) // n + 1):
                a, b = max(p.start, h * n), min(p.end, (h + 1) * n)
                cnt = b - a
                hours = cnt * step / 3600
                i0, i1 = a - p.start, b - p.start
                cpu_q, ram_q, gpu_q = [], [], []
                for c, ca, ma in zip(p.containers, cpu_allocs, mem_allocs):
                    cpu_q.append(max(fsum(ca[i0:i1]) / cnt, c.cpu_request or 0.0) * hours)
                    ram_q.append(max(fsum(ma[i0:i1]) / cnt, c.mem_request or 0.0) * hours)
                    gpu_q.append(max(float(c.gpu), float(c.gpu)) * hours)
                cpu_h, ram_h, gpu_h = fsum(cpu_q), fsum(ram_q), fsum(gpu_q)
                cpu_cost = cpu_h * (fsum(nd.cpu_price[a:b]) / cnt)
                ram_cost = ram_h / GiB * (fsum(nd.ram_price[a:b]) / cnt)
                gpu_cost = gpu_h * (fsum(nd.gpu_price[a:b]) / cnt)
                key = (h, p.namespace, p.workload[0], p.workload[1], p.name, p.node)
                meta.setdefault(key, labels)
                acc = parts[key]
                acc["cpu_core_hours"].append(cpu_h)
                acc["ram_byte_hours"].append(ram_h)
                acc["gpu_hours"].append(gpu_h)
                acc["cpu_cost"].append(cpu_cost)
                acc["ram_cost"].append(ram_cost)
                acc["gpu_cost"].append(gpu_cost)
                for _claim, volume, size in p.pvcs:
                    vol = volumes[volume]
                    bh = size * hours
                    cost = bh / GiB * vol.price
                    acc["pv_byte_hours"].append(bh)
                    acc["pv_cost"].append(cost)
                    vol_paid[(h, volume)].append(cost)
                    vol_paid[(h, volume, "bh")].append(bh)
                npart = node_parts[(h, p.node)]
                npart["cpu_core_hours"].append(cpu_h)
                npart["ram_byte_hours"].append(ram_h)
                npart["gpu_hours"].append(gpu_h)
                npart["cpu_cost"].append(cpu_cost)
                npart["ram_cost"].append(ram_cost)
                npart["gpu_cost"].append(gpu_cost)
                pod_rows[(h, p.namespace, p.name)].append((hours, key))

        # network: bytes of the hour from the last sample before it to the last one inside it
        for s in t.network:
            key_price = s.price_key
            for h in range(self.hours):
                lo = max(0, h * n - 1)
                hi = (h + 1) * n - 1
                v = s.values
                inc = [v[k] - v[k - 1] if v[k] >= v[k - 1] else v[k] for k in range(lo + 1, hi + 1)]
                gib = fsum(inc) / GiB
                cost = gib * t.network_prices[key_price] if key_price else 0.0
                candidates = pod_rows.get((h, s.namespace, s.pod_name))
                if not candidates:
                    continue  # the simulation only puts counters on pods that always run
                best = candidates[0]
                for c in candidates[1:]:
                    if c[0] > best[0]:
                        best = c
                parts[best[1]]["network_cost"].append(cost)

        by_hour: dict[int, list[tuple]] = defaultdict(list)
        for key in parts:
            by_hour[key[0]].append(key)
        out: list[dict] = []
        for h in range(self.hours):
            rows: list[dict] = []
            for key in by_hour.get(h, []):
                _, ns, kind, name, pod, node = key
                row = self._row(t, h, ns, kind, name, pod, node, dict(meta[key]))
                for fld, vals in parts[key].items():
                    row[fld] = fsum(vals)
                rows.append(row)
            hr = self.hour_steps(h)
            for nd in t.nodes:
                cap_cpu = fsum(nd.cpu_cores * nd.cpu_price[k] * step / 3600 for k in hr)
                cap_ram = fsum(nd.mem_bytes / GiB * nd.ram_price[k] * step / 3600 for k in hr)
                cap_gpu = fsum(nd.gpus * nd.gpu_price[k] * step / 3600 for k in hr)
                cap_cpu_h = fsum(nd.cpu_cores * step / 3600 for _ in hr)
                cap_ram_h = fsum(nd.mem_bytes * step / 3600 for _ in hr)
                cap_gpu_h = fsum(nd.gpus * step / 3600 for _ in hr)
                used = node_parts.get((h, nd.name), {})
                row = self._row(t, h, "__idle__", "__idle__", "__idle__", "", nd.name, {})
                row["cpu_cost"] = max(0.0, cap_cpu - fsum(used.get("cpu_cost", [])))
                row["ram_cost"] = max(0.0, cap_ram - fsum(used.get("ram_cost", [])))
                row["gpu_cost"] = max(0.0, cap_gpu - fsum(used.get("gpu_cost", [])))
                row["cpu_core_hours"] = max(0.0, cap_cpu_h - fsum(used.get("cpu_core_hours", [])))
                row["ram_byte_hours"] = max(0.0, cap_ram_h - fsum(used.get("ram_byte_hours", [])))
                row["gpu_hours"] = max(0.0, cap_gpu_h - fsum(used.get("gpu_hours", [])))
                rows.append(row)
            hours_active = n * step / 3600
            row = self._row(t, h, "__cluster_management__", "__cluster_management__", "__cluster_management__",
                            "", "", {})
            row["management_cost"] = t.management_price * hours_active
            rows.append(row)
            for lb in t.load_balancers:
                row = self._row(t, h, lb.namespace, "service", lb.service, "", "",
                                dict(t.namespace_labels.get(lb.namespace, {})))
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
            rows.sort(key=lambda r: (r["namespace"], r["workload_kind"], r["workload_name"], r["pod"], r["node"]))
            out.extend(rows)
        return out
