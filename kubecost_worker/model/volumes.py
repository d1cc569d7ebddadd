"""Persistent volumes (``docs/model.md``, "Persistent volumes"): a claimed volume's cost on the rows of the pods
that mount it, in proportion to their claim; what no pod paid for goes to an ``__unmounted__`` row; each volume an
asset row (``VolumeRow``) naming the rows that hold its cost, so the bill's figure for the disk can be spread back
over exactly them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..hours import HOUR
from . import timeline
from .cluster import ClusterHour, RowBook
from .pods import PodRows, Pods, samples_in
from .rows import GIB, UNMOUNTED, ExpenseRow, VolumeRow
from .series import KUBE_PERSISTENTVOLUME_CAPACITY_BYTES, POD_PVC_ALLOCATION, PV_HOURLY_COST


@dataclass
class PaidFor:
    """What the rows of pods paid of one volume: byte-hours, cost, and the cost on each row (by the row's key)."""

    byte_hours: float = 0.0
    cost: float = 0.0
    claims: dict[tuple[str, str, str, str], float] = field(default_factory=lambda: defaultdict(float))

    def add(self, row: ExpenseRow, byte_hours: float, cost: float) -> None:
        self.byte_hours += byte_hours
        self.cost += cost
        self.claims[_claim_key(row)] += cost


Paid = dict[str, PaidFor]  # by volume


def _claim_key(row: ExpenseRow) -> tuple[str, str, str, str]:
    """What names a row of a cluster-hour that holds a volume's cost: a pod's own row or an __unmounted__ row."""
    return (row.namespace, row.workload_name, row.pod, row.pod_uid)


def allocate_volumes(ctx: ClusterHour, pods: Pods, rows: PodRows) -> Paid:
    """PV costs on pod rows; returns per volume what pods paid."""
    pv_prices = {s.labels.get("persistentvolume", ""): s.samples for s in ctx.of(PV_HOURLY_COST)}
    paid: Paid = defaultdict(PaidFor)
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
            paid[volume].add(row, byte_hours, cost)
    return paid


def unmounted(ctx: ClusterHour, book: RowBook, paid: Paid) -> list[VolumeRow]:
    """Each volume's cost over its active interval, less what pods paid, on an ``__unmounted__`` row; a volume row
    per volume with a price series or a claim."""
    capacities = {s.labels.get("persistentvolume", ""): s.samples for s in ctx.of(KUBE_PERSISTENTVOLUME_CAPACITY_BYTES)}
    volumes: dict[str, VolumeRow] = {}
    for s in ctx.of(PV_HOURLY_COST):
        volume = s.labels.get("persistentvolume", "")
        t0, t1 = timeline.span([t for t, _ in s.samples], ctx.step, ctx.end)
        asset = volumes.setdefault(volume, VolumeRow(ctx.tenant, ctx.cluster_id, ctx.hour, volume))
        asset.provider_id = asset.provider_id or s.labels.get("provider_id", "")
        asset.running_minutes = (t1 - t0) / 60.0
        asset.price = timeline.time_weighted_mean(s.samples, t0, t1)
        capacity = capacities.get(volume)
        if not capacity:
            continue
        cost = timeline.product_integral(capacity, s.samples, t0, t1) / GIB
        byte_hours = timeline.integral(capacity, t0, t1)
        asset.cost = cost
        asset.capacity_bytes = byte_hours / ((t1 - t0) / HOUR) if t1 > t0 else 0.0
        paid_for = paid.get(volume, PaidFor())
        if cost - paid_for.cost > 1e-9 * cost:  # float residue of a fully claimed volume is not a row
            row = book.row(UNMOUNTED, "persistentvolume", volume)
            row.pv_cost += cost - paid_for.cost
            row.pv_byte_hours += max(0.0, byte_hours - paid_for.byte_hours)
            paid.setdefault(volume, paid_for).claims[_claim_key(row)] += cost - paid_for.cost
    for volume, paid_for in paid.items():
        asset = volumes.setdefault(volume, VolumeRow(ctx.tenant, ctx.cluster_id, ctx.hour, volume))
        asset.claims = sorted((*key, cost) for key, cost in paid_for.claims.items())
    return [volumes[name] for name in sorted(volumes)]
