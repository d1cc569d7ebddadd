"""The read layer's SQL: every value from the request is a bound parameter, never part of the SQL text.

A window ``[start_date, end_date)`` selects the hours that overlap it: from the hour holding ``start_date`` to
the last hour starting before ``end_date``. Timestamps returned are unix seconds of the hour (or day) start.
"""

from __future__ import annotations

import math
from typing import Any

from ..model.allocation import IDLE

_IN_WINDOW = ("cloud_account_id = {tenant:String} AND hour >= toStartOfHour(toDateTime({start:Int64}, 'UTC')) "
              "AND hour < toDateTime({end:Int64}, 'UTC')")
# The rows of the latest successful run of each tenant-hour, as the *_current views define them, with the run
# lookup narrowed to the tenant and window first: a few hundred run ids instead of the whole ledger.
WINDOW = (_IN_WINDOW + " AND run_id IN (SELECT argMax(run_id, recorded_at) FROM k8s_expense_runs WHERE "
          + _IN_WINDOW + " AND status = 'succeeded' GROUP BY hour)")
NAMESPACE_ROLLUP = "k8s_expenses_namespace_hourly"
SAVINGS = {"cpu_savings": "kubecost_savings_cpu_allocation", "memory_savings": "kubecost_savings_memory_allocation_bytes"}
COSTS = ("cpu_cost", "ram_cost", "gpu_cost", "pv_cost", "network_cost", "lb_cost", "total_cost")
QUANTITIES = ("cpu_core_hours", "ram_byte_hours")
AGGREGATES = {
    "namespace": ("namespace",),
    "workload": ("namespace", "workload_kind", "workload_name"),
    "pod": ("namespace", "workload_kind", "workload_name", "pod"),
    "node": ("node",),
    "cluster": ("cluster_id",),
}
STEPS = {"hour": "toUnixTimestamp(hour)", "day": "toUnixTimestamp(toStartOfDay(hour))",
         "window": "toUnixTimestamp(toStartOfHour(toDateTime({start:Int64}, 'UTC')))"}


def _params(tenant: str, start: int, end: int, **more: Any) -> dict[str, Any]:
    return {"tenant": tenant, "start": start, "end": end, **more}


def _point(ts: int, value: float, labels: dict) -> dict[str, Any]:
    return {"timestamp": int(ts), "value": float(value), "labels": dict(labels)}


class RawJson(tuple):
    """JSON text in pieces (bytes, as stored), written into the response as they are: a 30-day answer is 10 MB,
    and each copy of it costs milliseconds."""


def kubecost_metrics(query, tenant: str, start: int, end: int, names: list[str] | None) -> dict[str, RawJson]:
    """metric name -> the JSON array of its points, joined from the texts each run's hour got when it was written
    (``kubecost_metric_points_hourly``): a 30-day answer holds 10^5 points. Sorted by hour, then by the point's
    text (labels)."""
    only = " AND metric IN {names:Array(String)}" if names else ""
    rows = query(f"SELECT metric, points_json FROM kubecost_metric_points_hourly WHERE {WINDOW}{only} "
                 "ORDER BY metric, hour, points_json", _params(tenant, start, end, names=names or []),
                 strings_as_bytes=True)
    pieces: dict[bytes, list[bytes]] = {}
    previous = None
    for row in rows:
        if row != previous:  # the same text twice: one run's hour backfilled while it was written (0008)
            pieces.setdefault(row[0], [b"["]).extend((row[1], b","))
        previous = row
    for texts in pieces.values():
        texts[-1] = b"]"
    return {metric.decode(): RawJson(texts) for metric, texts in pieces.items()}


def savings(query, tenant: str, start: int, end: int) -> dict[str, RawJson]:
    found = kubecost_metrics(query, tenant, start, end, list(SAVINGS.values()))
    return {key: found.get(metric, RawJson((b"[]",))) for key, metric in SAVINGS.items()}


def cluster_costs(query, tenant: str, start: int, end: int) -> dict[str, Any]:
    """One query (the run lookup is most of its time): per hour and cluster the cost and its parts, summed here."""
    rows = query(
        "SELECT toUnixTimestamp(hour) AS ts, cluster_id, sum(total_cost), sumIf(cpu_cost, namespace != {idle:String}), "
        "sumIf(ram_cost, namespace != {idle:String}), sumIf(gpu_cost, namespace != {idle:String}), sum(pv_cost), "
        "sum(network_cost), sum(lb_cost), sum(management_cost), sumIf(total_cost, namespace = {idle:String}) "
        f"FROM {NAMESPACE_ROLLUP} WHERE {WINDOW} GROUP BY ts, cluster_id ORDER BY ts, cluster_id",
        _params(tenant, start, end, idle=IDLE))
    names = ("cpu_cost", "ram_cost", "gpu_cost", "pv_cost", "network_cost", "load_balancer_cost", "management_cost",
             "idle_cost")
    return {
        "total_cost": math.fsum(row[2] for row in rows),
        "data_points": [_point(ts, value, {"cluster_id": cluster}) for ts, cluster, value, *_ in rows],
        "summary": {name: math.fsum(row[3 + i] for row in rows) for i, name in enumerate(names)},
    }


def expenses(query, tenant: str, start: int, end: int, aggregate: str, step: str,
             namespace: str | None) -> list[dict[str, Any]]:
    """Costs grouped by ``aggregate`` (or ``label:<key>``) per ``step``, like Kubecost's allocation API."""
    more: dict[str, Any] = {}
    if aggregate.startswith("label:"):
        dimensions = [("label", "{label_key:String}"), ("value", "labels[{label_key:String}]")]
        more["label_key"] = aggregate.removeprefix("label:")
    else:
        dimensions = [(d, d) for d in AGGREGATES[aggregate]]
    where = WINDOW + (" AND namespace = {namespace:String}" if namespace is not None else "")
    if namespace is not None:
        more["namespace"] = namespace
    selected = ", ".join([f"{STEPS[step]} AS ts", *(f"{sql} AS d{i}" for i, (_, sql) in enumerate(dimensions)),
                          *(f"sum({c})" for c in (*COSTS, *QUANTITIES))])
    group = ", ".join(["ts", *(f"d{i}" for i in range(len(dimensions)))])
    # namespace and cluster sums come from the per-namespace rollup: ~10 rows an hour instead of one per pod
    table = NAMESPACE_ROLLUP if set(d for d, _ in dimensions) <= {"namespace", "cluster_id"} else "k8s_expenses"
    rows = query(f"SELECT {selected} FROM {table} WHERE {where} GROUP BY {group} "
                 f"ORDER BY ts, sum(total_cost) DESC, {group}", _params(tenant, start, end, **more))
    out = []
    for ts, *rest in rows:
        dims, values = rest[:len(dimensions)], rest[len(dimensions):]
        out.append({"timestamp": int(ts), **{name: str(v) for (name, _), v in zip(dimensions, dims)},
                    **{name: float(v) for name, v in zip((*COSTS, *QUANTITIES), values)}})
    return out
