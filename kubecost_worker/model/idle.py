"""What no pod was allocated (``docs/model.md``, "Idle" and "Cluster management"): per node and resource, the
capacity's cost less what its pods were allocated, on an ``__idle__`` row; the cluster's management fee on its own
row."""

from __future__ import annotations

from . import timeline
from .cluster import ClusterHour, RowBook
from .pods import Allocated
from .resources import RESOURCES
from .rows import IDLE, MANAGEMENT
from .series import KUBECOST_CLUSTER_MANAGEMENT_COST


def management(ctx: ClusterHour, book: RowBook) -> None:
    for s in ctx.of(KUBECOST_CLUSTER_MANAGEMENT_COST):
        book.row(MANAGEMENT, MANAGEMENT, MANAGEMENT).management_cost += ctx.active_cost(s)


def idle(ctx: ClusterHour, book: RowBook, prices: dict[str, dict[str, list[tuple[float, float]]]],
         allocated: Allocated) -> None:
    """An idle row per node with a CPU price, over the node's active interval."""
    capacity = {r.name: ctx.node_gauges(r.capacity) for r in RESOURCES}
    for node, cpu_prices in sorted(prices["cpu"].items()):
        t0, t1 = timeline.span([t for t, _ in cpu_prices], ctx.step, ctx.end)
        row = book.row(IDLE, IDLE, IDLE, node=node)
        for resource in RESOURCES:
            amount = capacity[resource.name].get(node, [])
            capacity_cost = timeline.product_integral(amount, prices[resource.name].get(node, []), t0,
                                                      t1) / resource.per_unit
            capacity_hours = timeline.integral(amount, t0, t1) if amount else 0.0
            used_hours, used_cost = allocated.get(node, {}).get(resource.name, (0.0, 0.0))
            setattr(row, resource.cost_field, max(0.0, capacity_cost - used_cost))
            setattr(row, resource.quantity_field, max(0.0, capacity_hours - used_hours))
