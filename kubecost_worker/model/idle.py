"""What no pod was allocated, and the nodes as assets (``docs/model.md``, "Idle", "Nodes" and "Cluster
management"): per node, its capacity's cost over its active interval; per node and resource, that cost less what its
pods were allocated, on an ``__idle__`` row; the cluster's management fee on its own row."""

from __future__ import annotations

from collections import defaultdict

from ..hours import HOUR
from . import timeline
from .cluster import ClusterHour, RowBook
from .pods import Allocated, Pod, Pods
from .resources import RESOURCES, NodePrices
from .rows import IDLE, MANAGEMENT, PRICE_DEFAULT, PRICE_NODE, PRICE_NONE, NodeRow
from .series import (KUBE_NODE_LABELS, KUBECOST_CLUSTER_MANAGEMENT_COST, KUBECOST_NODE_IS_SPOT,
                     NODE_CPU_HOURLY_COST, NODE_GPU_HOURLY_COST, NODE_RAM_HOURLY_COST)

ASSET_LABELS = ("provider_id", "instance_type", "region", "arch")  # on the node's price series
ZONE_LABELS = ("topology_kubernetes_io_zone", "failure_domain_beta_kubernetes_io_zone")  # kube_node_labels


def management(ctx: ClusterHour, book: RowBook) -> None:
    for s in ctx.of(KUBECOST_CLUSTER_MANAGEMENT_COST):
        book.row(MANAGEMENT, MANAGEMENT, MANAGEMENT).management_cost += ctx.active_cost(s)


def nodes_and_idle(ctx: ClusterHour, book: RowBook, prices: NodePrices, pods: Pods,
                   allocated: Allocated) -> list[NodeRow]:
    """A node row per node seen in the hour; an idle row per node priced by a CPU price series, or by a default
    (then any node with a capacity series)."""
    capacity = {r.name: ctx.node_gauges(r.capacity) for r in RESOURCES}
    attributes = _asset_labels(ctx)
    zones = ctx.latest_labels(KUBE_NODE_LABELS, "node")
    spot = {node: samples[-1][1] > 0 for node, samples in ctx.node_gauges(KUBECOST_NODE_IS_SPOT).items() if samples}
    pods_on: dict[str, list[Pod]] = defaultdict(list)
    for instances in pods.values():
        for pod in instances:
            if pod.node:
                pods_on[pod.node].append(pod)
    names = {*prices.series["cpu"], *prices.series["ram"], *prices.series["gpu"], *capacity["cpu"],
             *capacity["ram"], *pods_on}
    node_rows = []
    for node in sorted(names):
        t0, t1 = _active_interval(ctx, node, prices, capacity, pods_on.get(node, []))
        hours = (t1 - t0) / HOUR
        labels = attributes.get(node, {})
        zone = next((v for k in ZONE_LABELS if (v := zones.get((node,), {}).get(k))), "")
        source = PRICE_NODE if node in prices.series["cpu"] else (PRICE_DEFAULT if prices.defaults else PRICE_NONE)
        row = NodeRow(ctx.tenant, ctx.cluster_id, ctx.hour, node, zone=zone, spot=spot.get(node, False),
                      running_minutes=(t1 - t0) / 60.0, price_source=source,
                      **{k: labels.get(k, "") for k in ASSET_LABELS})
        idle = book.row(IDLE, IDLE, IDLE, node=node) if source != PRICE_NONE and (
            node in prices.series["cpu"] or node in capacity["cpu"]) else None
        for resource in RESOURCES:
            amount = capacity[resource.name].get(node, [])
            price, _ = prices.of(resource.name, node)
            capacity_cost = timeline.product_integral(amount, price, t0, t1) / resource.per_unit
            capacity_hours = timeline.integral(amount, t0, t1) if amount else 0.0
            used_hours, used_cost = allocated.get(node, {}).get(resource.name, (0.0, 0.0))
            setattr(row, f"{resource.name}_cost", capacity_cost)
            setattr(row, f"{resource.name}_price", timeline.time_weighted_mean(price, t0, t1))
            setattr(row, _CAPACITY_FIELD[resource.name], capacity_hours / hours if hours else 0.0)
            row.allocated_cost += used_cost
            if idle is not None:
                setattr(idle, resource.cost_field, max(0.0, capacity_cost - used_cost))
                setattr(idle, resource.quantity_field, max(0.0, capacity_hours - used_hours))
        if idle is not None:
            idle.price_source = source
            row.idle_cost = idle.cpu_cost + idle.ram_cost + idle.gpu_cost
        node_rows.append(row)
    return node_rows


_CAPACITY_FIELD = {"cpu": "cpu_cores", "ram": "ram_bytes", "gpu": "gpu_count"}


def _active_interval(ctx: ClusterHour, node: str, prices: NodePrices, capacity: dict, instances: list[Pod]) -> tuple:
    """The span of the node's CPU price samples, else of its CPU (then RAM) capacity samples, else of its pods."""
    for samples in (prices.series["cpu"].get(node), capacity["cpu"].get(node), capacity["ram"].get(node)):
        if samples:
            return timeline.span([t for t, _ in samples], ctx.step, ctx.end)
    if instances:
        return min(p.start for p in instances), max(p.stop for p in instances)
    return ctx.start, ctx.start


def _asset_labels(ctx: ClusterHour) -> dict[str, dict[str, str]]:
    """provider id, instance type, region, architecture of each node: from its CPU price series, else RAM, GPU."""
    found: dict[str, dict[str, str]] = {}
    for metric in (NODE_CPU_HOURLY_COST, NODE_RAM_HOURLY_COST, NODE_GPU_HOURLY_COST):
        for s in ctx.of(metric):
            labels = found.setdefault(s.labels.get("node", ""), {})
            for k in ASSET_LABELS:
                if not labels.get(k) and s.labels.get(k):
                    labels[k] = s.labels[k]
    return found
