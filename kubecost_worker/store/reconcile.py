"""Reconciliation with the cloud bill, in ClickHouse (docs/reconciliation.md): a tenant-day's node-hours and
volume-hours from the current runs, the FOCUS lines that bill them, the factors of ``model/reconcile.py`` written as
a new reconciliation, and the ledger row that makes it the one readers see (``k8s_reconciliations``).

When: ``reconcile_days`` for the days ``kubecost-worker reconcile`` names; ``reconcile_due`` each scheduler tick for
the days closed ``KCW_BILL_LAG_HOURS`` ago (within ``WINDOW_DAYS``) whose trigger changed: the day's current runs (a
rerun) or the load ids of the bill's periods covering it (a ``bill-load``). A day whose inputs (its runs and the
lines taken, summed) are what the latest reconciliation saw gets a ledger row naming that reconciliation again, and
no factors: a bill restated elsewhere re-reconciles nothing. A day reconciled anew is built again in the daily tier
(``store/days.py``), which keeps its reconciled costs once its hours expire.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from ..hours import DAY, HOUR, day_of, utc, whole_days
from ..model.reconcile import BILL, NODE, VOLUME, BillLines, Factor, ResourceHour, reconcile
from . import days, schema
from .cluster import quoted_table
from .client import classified, insert, query

WINDOW_DAYS = 62  # how far back a tick looks: providers restate a month's bill until it closes, the month after
FACTORS = "k8s_reconciled_factors"
LEDGER = "k8s_reconciliations"
CURRENT = schema.CURRENT_RECONCILIATIONS  # the latest reconciliation of each tenant-day: the one readers see
BILL_INDEX = "focus_bill_resources"  # which billing periods bill a resource (its declaration says why)
FACTOR_COLUMNS = schema.written_columns(FACTORS)
LEDGER_COLUMNS = schema.written_columns(LEDGER)
# The provider's tag on a bill line naming the Kubernetes cluster of the resource (EKS, GKE, AKS; the first found),
# compared with the rows' cluster_id: a tagged line no node or volume of the tenant is gets reported.
CLUSTER_TAGS = ("aws:eks:cluster-name", "eks:cluster-name", "goog-k8s-cluster-name", "aks-managed-cluster-name")
# What a line bills: usage of compute (nodes) or storage (volumes), and credits and adjustments of a resource. An
# instance's data transfer is billed as Compute usage under its id, priced per amount of data (AWS and Azure write
# PricingUnit 'GB'): it is the network the model prices from the network series, not the node's CPU, RAM or GPU, so
# it is left out and network costs stay at list (a memory line of Oracle's, 'GB Hours', is the node's).
DATA_UNITS = ("gb", "gib", "tb", "tib", "bytes")
BILLED_LINES = (f"(ChargeCategory = 'Usage' AND (ServiceCategory = 'Storage' OR (ServiceCategory = 'Compute' "
                f"AND lower(ifNull(PricingUnit, '')) NOT IN {DATA_UNITS}))) "
                "OR ChargeCategory IN ('Credit', 'Adjustment')")
# A resource-hour's modelled cost, the one a factor scales (the read API's list cost of an asset too), as SQL over
# k8s_nodes_hourly and k8s_volumes_hourly: a node's pods' and idle CPU, RAM and GPU; the pv_cost of a volume's claims.
NODE_COST = "allocated_cost + idle_cost"
VOLUME_COST = "arraySum(c -> c.pv_cost, claims)"
# a read of the bill narrowed to the partitions (period start, provider, billing account) of a parameter
PARTITION_IN = ("(BillingPeriodStart, ProviderName, BillingAccountId) "
                "IN {partitions:Array(Tuple(DateTime('UTC'), String, String))}")


def match_key(column: str) -> str:
    """The matching rule, once for both sides (a node's providerID or a volume's provider id; a bill line's
    ResourceId), as SQL: equal keys are one resource. Azure: from ``/subscriptions/`` on, lower case, a scale set's
    VM cut to its scale set (the bill names the set); everything else: the last ``/``-separated part (AWS
    ``aws:///zone/i-...`` and ``i-...``; Google ``gce://project/zone/name`` and ``.../instances/name``; Oracle's
    OCID, with or without ``oci://``; EBS ``vol-...``, a GCE disk's name)."""
    value = f"ifNull({column}, '')"
    azure = f"positionCaseInsensitive({value}, '/subscriptions/')"
    return (f"multiIf({value} = '', '', {azure} > 0, replaceRegexpOne(lower(substring({value}, {azure})), "
            f"'(/virtualmachinescalesets/[^/]+)/virtualmachines/.*$', '\\\\1'), splitByChar('/', {value})[-1])")


def cluster_tag() -> str:
    return "coalesce(" + ", ".join(f"nullIf(JSONExtractString(ifNull(Tags, ''), '{tag}'), '')"
                                   for tag in CLUSTER_TAGS) + ", '')"


@dataclass(frozen=True)
class BillSettings:
    table: str  # KCW_BILL_TABLE
    cost: str   # KCW_BILL_COST: EffectiveCost or BilledCost (validated by the config)


@dataclass(frozen=True)
class DayReconciled:
    tenant: str
    day: int
    reconcile_id: uuid.UUID
    changed: bool  # False: the inputs were those of the latest reconciliation, named again
    list_cost: float
    modelled_cost: float
    billed_cost: Decimal
    matched: int     # resource-hours
    unmatched: int
    unmatched_bill_lines: int

    def line(self) -> str:
        what = "reconciled" if self.changed else "unchanged"
        return (f"{self.tenant} {utc(self.day):%Y-%m-%d}: {what}, list {self.list_cost:.2f}, matched "
                f"{self.modelled_cost:.2f} billed {self.billed_cost:.2f}; {self.matched} resource-hours matched, "
                f"{self.unmatched} not, {self.unmatched_bill_lines} bill lines of no resource")


def reconcile_days(client: Any, bill: BillSettings, tenants: Iterable[str], start: int, end: int
                   ) -> list[DayReconciled]:
    """Reconcile each UTC day in ``[start, end)`` (widened to whole days) of ``tenants`` (default: every tenant with
    hours in it) that the bill covers."""
    first, last = whole_days(start, end)
    bills = day_triggers(client, bill, first, last, tenants)
    return _rebuilt(client, [reconcile_day(client, bill, tenant, day, day_bill)
                             for (tenant, day), day_bill in sorted(bills.items())])


def reconcile_due(client: Any, bill: BillSettings, lag_hours: int, now: float) -> list[DayReconciled]:
    """The scheduler's part: every tenant-day closed ``lag_hours`` ago, within ``WINDOW_DAYS``, covered by the bill
    and never reconciled, or whose current runs or bill periods changed since."""
    last = day_of(now - lag_hours * HOUR)
    first = last - WINDOW_DAYS * DAY
    bills = day_triggers(client, bill, first, last)
    if not bills:
        return []
    seen = dict(((tenant, int(day)), trigger) for tenant, day, trigger in query(
        client, f"SELECT cloud_account_id, toUnixTimestamp(toDateTime(bill_day, 'UTC')), trigger FROM {CURRENT} "
                "WHERE bill_day >= toDate({first:DateTime('UTC')})", {"first": utc(first)},
        action="reading the reconciliations"))
    return _rebuilt(client, [reconcile_day(client, bill, tenant, day, day_bill)
                             for (tenant, day), day_bill in sorted(bills.items())
                             if seen.get((tenant, day)) != day_bill.trigger], now)


def _rebuilt(client: Any, done: list[DayReconciled], now: float | None = None) -> list[DayReconciled]:
    """``done``, once the days reconciled anew are built again in the daily tier (over days only)."""
    days.rebuild(client, [(d.tenant, d.day) for d in done if d.changed], now)
    return done


@dataclass(frozen=True)
class DayBill:
    """What a tenant-day is reconciled with: the bill's partitions (period start, provider, billing account) that
    bill its resources, and its trigger, a hash of its current runs and of those periods' loads. Lines tagged with
    the tenant's clusters are looked for in these partitions: cluster names are not unique across accounts."""

    partitions: tuple[tuple, ...]
    trigger: int


def day_triggers(client: Any, bill: BillSettings, first: int, last: int, tenants: Iterable[str] = ()
                 ) -> dict[tuple[str, int], DayBill]:
    """(tenant, day) -> its bill, for the days in ``[first, last)`` of ``tenants`` (default: every tenant) with
    current runs, whose resources a billing period bills, every such period charged to the end of the day's last hour
    (of the day's end, once the day is whole). What it reads follows the tenants and days asked: their runs, nodes
    and volumes; the rows of ``BILL_INDEX`` with their keys; the periods of the partitions found."""
    tenants = sorted(tenants)
    params = {"first": utc(first), "last": utc(last), "tenants": tenants}
    window = ("hour >= {first:DateTime('UTC')} AND hour < {last:DateTime('UTC')}"
              + (" AND cloud_account_id IN {tenants:Array(String)}" if tenants else ""))
    runs = query(client, "SELECT cloud_account_id, toUnixTimestamp(toStartOfDay(hour)) AS day, "
                         "groupBitXor(cityHash64(hour, run_id)), toUnixTimestamp(max(hour)) + 3600 "
                         f"FROM k8s_expense_current_runs WHERE {window} GROUP BY cloud_account_id, day", params,
                 action="reading the current runs")
    if not runs:
        return {}
    # every row's resources, not only the current runs': a key too many only adds a partition to read
    keys = query(client, " UNION DISTINCT ".join(
        f"SELECT cloud_account_id, toUnixTimestamp(toStartOfDay(hour)), {match_key('provider_id')} AS key "
        f"FROM {table} WHERE {window} AND key != ''"
        for table in ("k8s_nodes_hourly", "k8s_volumes_hourly")), params, action="reading the days' resources")
    found = query(client, f"SELECT resource_key, toUnixTimestamp(BillingPeriodStart), "
                          f"toUnixTimestamp(BillingPeriodEnd), ProviderName, BillingAccountId FROM {BILL_INDEX} "
                          "WHERE resource_key IN {keys:Array(String)} AND BillingPeriodEnd > {first:DateTime('UTC')} "
                          "AND BillingPeriodStart < {last:DateTime('UTC')} GROUP BY ALL",
                  {**params, "keys": sorted({key for _, _, key in keys})},
                  action="looking the resources up in the bill")
    periods_of = defaultdict(set)
    for key, start, end, provider, account in found:
        periods_of[key].add((int(start), int(end), provider, account))
    loads = _period_loads(client, bill, {(start, provider, account) for periods in periods_of.values()
                                         for start, _, provider, account in periods})
    billing = defaultdict(set)
    for tenant, day, key in keys:
        billing[(tenant, int(day))].update((start, provider, account) for start, end, provider, account
                                           in periods_of.get(key, ()) if start <= day < end)
    bills = {}
    for tenant, day, runs_hash, hours_end in runs:
        day_partitions = sorted(p for p in billing.get((tenant, int(day)), ()) if p in loads)
        if day_partitions and all(loads[p][0] >= hours_end for p in day_partitions):
            bills[(tenant, int(day))] = DayBill(
                tuple(day_partitions), _hash64(int(runs_hash), *sorted(loads[p][1] for p in day_partitions)))
    return bills


def _period_loads(client: Any, bill: BillSettings, partitions: set[tuple]) -> dict[tuple, tuple[int, str]]:
    """Per partition (period start, provider, billing account): the end of its last charge and its load id, from the
    bill's projection bill_periods."""
    if not partitions:
        return {}
    rows = query(client, "SELECT toUnixTimestamp(BillingPeriodStart), ProviderName, BillingAccountId, "
                         "toUnixTimestamp(max(ChargePeriodEnd)), toString(any(load_id)) "
                         f"FROM {quoted_table(bill.table)} WHERE {PARTITION_IN} GROUP BY BillingPeriodStart, "
                         "BillingPeriodEnd, ProviderName, BillingAccountId",
                 {"partitions": _partition_values(partitions)}, action="reading the bill's periods")
    return {(int(start), provider, account): (int(charged_to), load)
            for start, provider, account, charged_to, load in rows}


def _partition_values(partitions: Iterable[tuple]) -> list[tuple]:
    """``PARTITION_IN``'s parameter: the partitions' (period start, provider, billing account), the start a time."""
    return [(utc(start), provider, account) for start, provider, account in sorted(partitions)]


def _hash64(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def reconcile_day(client: Any, bill: BillSettings, tenant: str, day: int, day_bill: DayBill) -> DayReconciled:
    """Reconcile one tenant-day: its factors as a new reconciliation unless its inputs are the latest one's; the
    ledger row last, which makes it current."""
    runs, resources = _resource_hours(client, tenant, day)
    lines = _bill_lines(client, bill, day, day_bill.partitions, {r.key for r in resources if r.key},
                        {r.cluster_id for r in resources})
    inputs = _hash64(bill.cost, sorted(runs), sorted(lines, key=repr))
    latest = query(client, f"SELECT reconcile_id, inputs FROM {CURRENT} WHERE cloud_account_id = {{tenant:String}} "
                           "AND bill_day = toDate({day:DateTime('UTC')})", {"tenant": tenant, "day": utc(day)},
                   action="reading the latest reconciliation")
    factors = reconcile(resources, lines, {r.cluster_id for r in resources})
    changed = not latest or latest[0][1] != inputs
    reconcile_id = uuid.uuid4() if changed else latest[0][0]
    if changed and factors:
        insert(client, FACTORS, FACTOR_COLUMNS, _factor_rows(tenant, reconcile_id, factors),
               action=f"writing the factors of {tenant} {utc(day):%Y-%m-%d}")
        _write_claims(client, tenant, day, reconcile_id)
    summary = _summary(tenant, day, reconcile_id, changed, factors)
    insert(client, LEDGER, LEDGER_COLUMNS, [_ledger_row(summary, bill, day_bill.trigger, inputs, factors)],
           action=f"recording the reconciliation of {tenant} {utc(day):%Y-%m-%d}")
    return summary


def _resource_hours(client: Any, tenant: str, day: int) -> tuple[list[tuple], list[ResourceHour]]:
    """The day's current runs, and its node-hours and volume-hours with their matching keys and modelled costs."""
    params = {"tenant": tenant, "first": utc(day), "last": utc(day + DAY)}
    window = "cloud_account_id = {tenant:String} AND hour >= {first:DateTime('UTC')} AND hour < {last:DateTime('UTC')}"
    runs = query(client, f"SELECT toUnixTimestamp(hour), toString(run_id) FROM k8s_expense_current_runs "
                         f"WHERE {window}", params, action="reading the day's runs")
    nodes = query(client, f"SELECT cluster_id, node, toUnixTimestamp(hour), {match_key('provider_id')}, "
                          f"{NODE_COST} FROM k8s_nodes_hourly_current WHERE {window}", params,
                  action="reading the day's nodes")
    volumes = query(client, f"SELECT cluster_id, volume, toUnixTimestamp(hour), {match_key('provider_id')}, "
                            f"{VOLUME_COST} FROM k8s_volumes_hourly_current WHERE {window}",
                    params, action="reading the day's volumes")
    return runs, ([ResourceHour(NODE, *row) for row in nodes] + [ResourceHour(VOLUME, *row) for row in volumes])


def _bill_lines(client: Any, bill: BillSettings, day: int, partitions: tuple[tuple, ...], keys: set[str],
               clusters: set[str]) -> list[BillLines]:
    """The lines of ``partitions`` charged in the day that bill one of ``keys``, or carry the cluster tag of one of
    ``clusters``, summed per key, kind of charge, charge period and cluster tag."""
    if not keys and not clusters:
        return []
    rows = query(client, f"""
        SELECT {match_key('ResourceId')} AS key, ServiceCategory, ChargeCategory,
            toUnixTimestamp(ChargePeriodStart), toUnixTimestamp(ChargePeriodEnd), sum({bill.cost}), count(),
            {cluster_tag()} AS cluster
        FROM {quoted_table(bill.table)}
        WHERE {PARTITION_IN}
            AND ChargePeriodStart >= {{day:DateTime('UTC')}} AND ChargePeriodStart < {{next:DateTime('UTC')}}
            AND ({BILLED_LINES}) AND (key IN {{keys:Array(String)}} OR cluster IN {{clusters:Array(String)}})
        GROUP BY ALL""", {"day": utc(day), "next": utc(day + DAY), "keys": sorted(keys), "clusters": sorted(clusters),
                          "partitions": _partition_values(partitions)},
                 action="reading the day's bill lines")
    return [BillLines(key, service, category, int(start), int(end), Decimal(cost), int(count), cluster)
            for key, service, category, start, end, cost, count, cluster in rows]


def _write_claims(client: Any, tenant: str, day: int, reconcile_id: uuid.UUID) -> None:
    """The reconciliation's claim rows (k8s_reconciled_factors.sql says what they are), from its node and volume
    factors just written: for each pod's own row holding volume costs among the day's current rows, its node-hour's
    factor and the sum of its parts of the volumes (its run's claims) times their volume-hours' factors."""
    day_of_tenant = ("cloud_account_id = {tenant:String} AND hour >= {first:DateTime('UTC')} "
                     "AND hour < {last:DateTime('UTC')}")

    def factors(kind: str, prefix: str) -> str:
        return (f"SELECT hour AS {prefix}_hour, cluster_id AS {prefix}_cluster, resource AS {prefix}_name, "
                f"factor AS {prefix}_factor, true AS {prefix}_found FROM {FACTORS} WHERE {day_of_tenant} "
                f"AND reconcile_id = {{reconcile_id:UUID}} AND kind = '{kind}' AND matched")

    sql = f"""
        INSERT INTO {FACTORS} (cloud_account_id, cluster_id, hour, kind, resource, factor, matched, namespace,
            workload_name, pod, pod_uid, pv_reconciled, pv_matched, reconcile_id)
        SELECT {{tenant:String}}, e.cluster_id, e.hour, 'claim', e.node, if(nf.node_found, nf.node_factor, 1.),
            nf.node_found, e.namespace, e.workload_name, e.pod, e.pod_uid, pv.pv_reconciled, pv.pv_found,
            {{reconcile_id:UUID}}
        FROM (SELECT cluster_id, hour, run_id, node, namespace, workload_name, pod, pod_uid FROM k8s_expenses_current
              WHERE {day_of_tenant} AND container = '' AND pv_cost != 0) AS e
        LEFT ANY JOIN ({factors('node', 'node')}) AS nf
            ON e.hour = nf.node_hour AND e.cluster_id = nf.node_cluster AND e.node = nf.node_name
        LEFT ANY JOIN (
            SELECT v.hour AS pv_hour, v.run_id AS pv_run_id, v.cluster_id AS pv_cluster,
                claim.namespace AS pv_namespace, claim.workload_name AS pv_workload_name, claim.pod AS pv_pod,
                claim.pod_uid AS pv_pod_uid, sum(claim.pv_cost * if(vf.volume_found, vf.volume_factor, 1.))
                AS pv_reconciled, max(vf.volume_found) AS pv_found
            FROM k8s_volumes_hourly AS v
            ARRAY JOIN v.claims AS claim
            LEFT ANY JOIN ({factors('volume', 'volume')}) AS vf
                ON v.hour = vf.volume_hour AND v.cluster_id = vf.volume_cluster AND v.volume = vf.volume_name
            WHERE {day_of_tenant}
            GROUP BY pv_hour, pv_run_id, pv_cluster, pv_namespace, pv_workload_name, pv_pod, pv_pod_uid
        ) AS pv ON e.hour = pv.pv_hour AND e.run_id = pv.pv_run_id AND e.cluster_id = pv.pv_cluster
            AND e.namespace = pv.pv_namespace AND e.workload_name = pv.pv_workload_name AND e.pod = pv.pv_pod
            AND e.pod_uid = pv.pv_pod_uid
        WHERE nf.node_found OR pv.pv_found"""
    with classified(f"writing the claims of {tenant} {utc(day):%Y-%m-%d}"):
        client.command(sql, parameters={"tenant": tenant, "first": utc(day), "last": utc(day + DAY),
                                        "reconcile_id": reconcile_id})


def index_bill(client: Any, source: str) -> None:
    """Record in ``BILL_INDEX`` the periods of the bill lines in ``source`` (a table) by the matching keys of the
    resources they bill."""
    insert_sql = (f"INSERT INTO {BILL_INDEX} (resource_key, BillingPeriodStart, BillingPeriodEnd, ProviderName, "
                  f"BillingAccountId) SELECT DISTINCT {match_key('ResourceId')} AS resource_key, BillingPeriodStart, "
                  f"BillingPeriodEnd, ProviderName, BillingAccountId FROM {quoted_table(source)} "
                  f"WHERE ({BILLED_LINES}) AND resource_key != ''")
    with classified("indexing the bill's periods"):
        client.command(insert_sql)


def _factor_rows(tenant: str, reconcile_id: uuid.UUID, factors: list[Factor]) -> list[list]:
    return [[tenant, f.cluster_id, utc(f.hour), f.kind, f.resource, f.resource_id, utc(f.period_start),
             utc(f.period_end), f.modelled, f.factor, f.matched, f.period_modelled, f.period_billed, f.bill_lines,
             reconcile_id] for f in factors]


def _summary(tenant: str, day: int, reconcile_id: uuid.UUID, changed: bool, factors: list[Factor]) -> DayReconciled:
    resources = [f for f in factors if f.kind != BILL]
    matched = [f for f in resources if f.matched]
    periods = {(f.kind, f.resource_id, f.period_start): f.period_billed for f in matched}
    return DayReconciled(tenant, day, reconcile_id, changed, sum(f.modelled for f in resources),
                         sum(f.modelled for f in matched), sum(periods.values(), Decimal(0)), len(matched),
                         len(resources) - len(matched), sum(f.bill_lines for f in factors if f.kind == BILL))


def _ledger_row(summary: DayReconciled, bill: BillSettings, trigger: int, inputs: int, factors: list[Factor]
                ) -> list:
    hours = defaultdict(int)
    for f in factors:
        if f.kind != BILL:
            hours[(f.kind, f.matched)] += 1
    unmatched_cost = sum((f.period_billed for f in factors if f.kind == BILL), Decimal(0))
    return [summary.tenant, utc(summary.day).date(), summary.reconcile_id, trigger,
            inputs, bill.cost, summary.list_cost, summary.modelled_cost, summary.billed_cost, hours[(NODE, True)],
            hours[(NODE, False)], hours[(VOLUME, True)], hours[(VOLUME, False)], summary.unmatched_bill_lines,
            unmatched_cost]


FACTOR_KEY = "(cloud_account_id, reconcile_id)"  # what names a reconciliation's rows of FACTORS, for cleanup


def superseded_reconciliations(client: Any, since: Any = None) -> list[tuple]:
    """(tenant, reconcile id, partition) of the reconciliations whose factors cleanup removes: named by the ledger of
    their tenant-day and no longer its current one, in tenant-days whose ledger changed since ``since`` (the server's
    clock; None: every day). Such a one never becomes current again (a day found unchanged names its current
    reconciliation again, no other), and one still writing its factors has no ledger row yet: it is not listed."""
    changed = ("WHERE (cloud_account_id, bill_day) IN (SELECT cloud_account_id, bill_day FROM k8s_reconciliations "
               "WHERE computed_at >= {since:DateTime64(6, 'UTC')})") if since else ""
    return query(client, f"""
        SELECT r.cloud_account_id, r.reconcile_id, toYYYYMM(r.bill_day)
        FROM (SELECT DISTINCT cloud_account_id, bill_day, reconcile_id FROM k8s_reconciliations {changed}) AS r
        INNER JOIN (SELECT cloud_account_id, bill_day, reconcile_id FROM {CURRENT} {changed}) AS current
            ON r.cloud_account_id = current.cloud_account_id AND r.bill_day = current.bill_day
        WHERE r.reconcile_id != current.reconcile_id
        ORDER BY r.cloud_account_id, r.bill_day""", {"since": since} if since else {},
                 action="finding superseded reconciliations")


@dataclass(frozen=True)
class ReconciledDays:
    """What ``status`` tells of a tenant's reconciliation: the days reconciled (their latest reconciliation), their
    list cost and the part of it matched to bill lines."""

    days: int
    list_cost: float
    modelled_cost: float

    @property
    def matched_share(self) -> float:
        return self.modelled_cost / self.list_cost if self.list_cost else 0.0


def reconciled_days(client: Any, tenants: Iterable[str] = ()) -> dict[str, ReconciledDays]:
    """Per tenant (all: none named), its reconciled days as their latest reconciliations say."""
    tenants = list(tenants)
    where = "WHERE cloud_account_id IN {tenants:Array(String)}" if tenants else ""
    rows = query(client, f"SELECT cloud_account_id, count(), sum(list_cost), sum(modelled_cost) FROM {CURRENT} "
                         f"{where} GROUP BY cloud_account_id", {"tenants": tenants})
    return {tenant: ReconciledDays(int(n), float(listed), float(matched)) for tenant, n, listed, matched in rows}
