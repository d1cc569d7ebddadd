"""The cloud bill's side of the read API (docs/api.md, "k8s_assets" and "k8s_clusters"): a tenant's nodes and
volumes per billing period with their list cost, billed cost and factor, and its clusters with their cost at list
price and reconciled (docs/reconciliation.md).

One definition of a resource-hour (``_resource_hours``): the current run's node or volume row, its list cost the
modelled cost reconciliation scales (``store.reconcile.NODE_COST``, ``VOLUME_COST``), and the factor of the latest
reconciliation of its day where it was matched to the bill, else 1. Both endpoints sum it, so a cluster's reconciled
cost is the sum of its assets' billed costs and of the rest of its rows at list price, as
``k8s_expenses_reconciled_current`` has it. Every value from the request is a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..model.reconcile import NODE, VOLUME
from ..store.reconcile import NODE_COST, VOLUME_COST
from . import metroculus
from .allocation import BadParameter, parameter

# kind -> (its assets table, the column naming the resource, its list cost)
KINDS = {NODE: ("k8s_nodes_hourly", "node", NODE_COST), VOLUME: ("k8s_volumes_hourly", "volume", VOLUME_COST)}
ASSET_FIELDS = ("timestamp", "period_end", "type", "cluster", "name", "providerID", "hours", "list_cost",
                "billed_cost", "adjustment", "factor", "matched", "reconciled", "bill_lines")
CLUSTER_FIELDS = ("cluster", "list_cost", "reconciled_cost", "matched_list_cost", "matched_billed_cost")


@dataclass(frozen=True)
class AssetsRequest:
    kinds: tuple[str, ...] = (NODE, VOLUME)
    cluster: str | None = None


def parse_assets(params) -> AssetsRequest:
    """``type`` (node or volume; blank or absent: both), then ``cluster`` (blank or absent: every cluster)."""
    kind = parameter(params, "type")
    if kind is not None and kind not in KINDS:
        raise BadParameter("type")
    return AssetsRequest((kind,) if kind else (NODE, VOLUME), parameter(params, "cluster"))


def _resource_hours(kinds: tuple[str, ...], cluster: str | None) -> str:
    """SQL of the tenant's resource-hours in the window: kind, cluster_id, name, provider_id, list_cost,
    reconciled (its day has a reconciliation), is_matched, factor, and the billing period of a matched one (its
    hour otherwise) with its bill lines. A LEFT JOIN's missing side reads as its defaults: ``found`` false."""
    only = " AND cluster_id = {cluster:String}" if cluster is not None else ""
    selects = []
    for kind in kinds:
        table, name, cost = KINDS[kind]
        selects.append(f"""
            SELECT '{kind}' AS kind, r.cluster_id AS cluster_id, toString(r.name) AS name, r.provider_id AS provider_id,
                r.list_cost AS list_cost, ifNull(f.found, false) AS reconciled,
                ifNull(f.found AND f.matched, false) AS is_matched, if(is_matched, f.factor, 1.) AS factor,
                if(is_matched, f.period_start, r.hour) AS period_start,
                if(is_matched, f.period_end, r.hour + INTERVAL 1 HOUR) AS period_end,
                if(is_matched, f.bill_lines, 0) AS bill_lines
            FROM (SELECT cluster_id, hour, {name} AS name, provider_id, {cost} AS list_cost FROM {table}
                  WHERE {metroculus.WINDOW}{only}) AS r
            LEFT JOIN (SELECT cluster_id, hour, resource, factor, matched, period_start, period_end, bill_lines,
                              true AS found
                       FROM k8s_reconciled_factors_current WHERE {metroculus.IN_WINDOW} AND kind = '{kind}') AS f
                ON r.cluster_id = f.cluster_id AND r.hour = f.hour AND r.name = f.resource""")
    return " UNION ALL ".join(selects)


def _assets_select(request: AssetsRequest, tenant: str, start: int, end: int) -> tuple[str, dict[str, Any]]:
    sql = (f"SELECT toUnixTimestamp(period_start) AS ts, toUnixTimestamp(period_end) AS te, kind, cluster_id, name, "
           "any(provider_id), count(), sum(list_cost), sum(list_cost * factor), any(factor), max(is_matched), "
           f"max(reconciled), max(bill_lines) FROM ({_resource_hours(request.kinds, request.cluster)}) "
           "GROUP BY ts, te, kind, cluster_id, name ORDER BY ts, kind, cluster_id, name, te")
    return sql, metroculus.bound_params(tenant, start, end, cluster=request.cluster)


def assets(reader, request: AssetsRequest, tenant: str, start: int, end: int) -> Iterator[dict[str, Any]]:
    """A row per resource and billing period (its hours in the window), by period, then type, cluster and name.
    Streamed in pieces of whole days (a period is an hour or a UTC day, so never cut), as the per-day breakdowns
    of the allocation API are: memory follows the piece, not the window."""
    for piece_start, piece_end in metroculus.window_pieces(reader, tenant, start, end, "day"):
        for (ts, te, kind, cluster, name, provider_id, hours, list_cost, billed, factor, matched, reconciled,
             lines) in reader.stream(*_assets_select(request, tenant, piece_start, piece_end)):
            yield dict(zip(ASSET_FIELDS, (int(ts), int(te), kind, cluster, name, provider_id, int(hours),
                                          float(list_cost), float(billed), float(billed) - float(list_cost),
                                          float(factor), bool(matched), bool(reconciled), int(lines))))


def clusters(reader, tenant: str, start: int, end: int) -> list[dict[str, Any]]:
    """A row per cluster with rows in the window, highest list cost first: its list cost (every row, as
    ``kubecost_cluster_costs`` sums them, from the hours stored) and, where some of its node or volume hours are
    reconciled, its reconciled cost: the list cost with its matched assets' list cost replaced by their billed
    cost (null where none is reconciled)."""
    sql = (f"SELECT l.cluster_id, l.list_cost, a.any_reconciled, a.matched_list, a.matched_billed "
           f"FROM (SELECT cluster_id, sum(total_cost) AS list_cost FROM {metroculus.NAMESPACE_ROLLUP} "
           f"WHERE {metroculus.WINDOW} GROUP BY cluster_id) AS l "
           "LEFT JOIN (SELECT cluster_id, max(reconciled) AS any_reconciled, sumIf(list_cost, is_matched) AS "
           "matched_list, sumIf(list_cost * factor, is_matched) AS matched_billed "
           f"FROM ({_resource_hours((NODE, VOLUME), None)}) GROUP BY cluster_id) AS a ON l.cluster_id = a.cluster_id "
           "ORDER BY l.list_cost DESC, l.cluster_id")
    answer = []
    for cluster, list_cost, reconciled, matched_list, matched_billed in reader.query(
            sql, metroculus.bound_params(tenant, start, end)):
        matched_list, matched_billed = float(matched_list or 0.0), float(matched_billed or 0.0)
        answer.append(dict(zip(CLUSTER_FIELDS, (
            cluster, float(list_cost), float(list_cost) - matched_list + matched_billed if reconciled else None,
            matched_list, matched_billed))))
    return answer
