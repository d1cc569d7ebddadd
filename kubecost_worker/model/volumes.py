"""Persistent volumes (``docs/model.md``, "Persistent volumes"): a claimed volume's cost on the rows of the pods
that mount it, in proportion to their claim; what no pod paid for goes to an ``__unmounted__`` row."""

from __future__ import annotations

from collections import defaultdict

from . import timeline
from .cluster import ClusterHour, RowBook
from .pods import PodRows, Pods, samples_in
from .rows import GIB, UNMOUNTED
from .series import KUBE_PERSISTENTVOLUME_CAPACITY_BYTES, POD_PVC_ALLOCATION, PV_HOURLY_COST

Paid = dict[str, list[float]]  # volume -> [byte-hours, cost] pods paid


def allocate_volumes(ctx: ClusterHour, pods: Pods, rows: PodRows) -> Paid:
    """PV costs on pod rows; returns per volume what pods paid."""
    pv_prices = {s.labels.get("persistentvolume", ""): s.samples for s in ctx.of(PV_HOURLY_COST)}
    paid: Paid = defaultdict(lambda: [0.0, 0.0])
    for s in ctx.of(POD_PVC_ALLOCATION):
        ns, name, volume = (s.labels.get(k, "") for k in ("namespace", "pod", "persistentvolume"))
        instances = pods.get((ns, name), [])
        for pod in instances:
            samples = samples_in(instances, pod, s.samples)
            if not samples:
                continue
            byte_hours = timeline.mean(samples) * pod.running_hours
            cost = byte_hours / GIB * timeline.time_weighted_mean(pv_prices.get(volume, []), pod.start, pod.stop)
            row = rows.of(pod)
            row.pv_byte_hours += byte_hours
            row.pv_cost += cost
            paid[volume][0] += byte_hours
            paid[volume][1] += cost
    return paid


def unmounted(ctx: ClusterHour, book: RowBook, paid: Paid) -> None:
    """Each volume's cost over its active interval, less what pods paid, on an ``__unmounted__`` row."""
    capacities = {s.labels.get("persistentvolume", ""): s.samples for s in ctx.of(KUBE_PERSISTENTVOLUME_CAPACITY_BYTES)}
    for s in ctx.of(PV_HOURLY_COST):
        volume = s.labels.get("persistentvolume", "")
        capacity = capacities.get(volume)
        if not capacity:
            continue
        t0, t1 = timeline.span([t for t, _ in s.samples], ctx.step, ctx.end)
        cost = timeline.product_integral(capacity, s.samples, t0, t1) / GIB
        byte_hours = timeline.integral(capacity, t0, t1)
        paid_byte_hours, paid_cost = paid.get(volume, (0.0, 0.0))
        if cost - paid_cost > 1e-9 * cost:  # float residue of a fully claimed volume is not a row
            row = book.row(UNMOUNTED, "persistentvolume", volume)
            row.pv_cost += cost - paid_cost
            row.pv_byte_hours += max(0.0, byte_hours - paid_byte_hours)
