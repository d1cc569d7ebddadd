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
from .client import insert, query

WINDOW_DAYS = 62  # how far back a tick looks: providers restate a month's bill until it closes, the month after
FACTORS = "k8s_reconciled_factors"
LEDGER = "k8s_reconciliations"
CURRENT = schema.CURRENT_RECONCILIATIONS  # the latest reconciliation of each tenant-day: the one readers see
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
    triggers = day_triggers(client, bill, first, last)
    wanted = set(tenants)
    return _rebuilt(client, [reconcile_day(client, bill, tenant, day, trigger)
                             for (tenant, day), trigger in sorted(triggers.items())
                             if not wanted or tenant in wanted])


def reconcile_due(client: Any, bill: BillSettings, lag_hours: int, now: float) -> list[DayReconciled]:
    """The scheduler's part: every tenant-day closed ``lag_hours`` ago, within ``WINDOW_DAYS``, covered by the bill
    and never reconciled, or whose current runs or bill periods changed since."""
    last = day_of(now - lag_hours * HOUR)
    first = last - WINDOW_DAYS * DAY
    triggers = day_triggers(client, bill, first, last)
    if not triggers:
        return []
    seen = dict(((tenant, int(day)), trigger) for tenant, day, trigger in query(
        client, f"SELECT cloud_account_id, toUnixTimestamp(toDateTime(bill_day, 'UTC')), trigger FROM {CURRENT} "
                "WHERE bill_day >= toDate({first:DateTime('UTC')})", {"first": utc(first)},
        action="reading the reconciliations"))
    return _rebuilt(client, [reconcile_day(client, bill, tenant, day, trigger)
                             for (tenant, day), trigger in sorted(triggers.items())
                             if seen.get((tenant, day)) != trigger], now)


def _rebuilt(client: Any, done: list[DayReconciled], now: float | None = None) -> list[DayReconciled]:
    """``done``, once the days reconciled anew are built again in the daily tier (over days only)."""
    days.rebuild(client, [(d.tenant, d.day) for d in done if d.changed], now)
    return done


def day_triggers(client: Any, bill: BillSettings, first: int, last: int) -> dict[tuple[str, int], int]:
    """(tenant, day) -> its trigger, for the days in ``[first, last)`` with current runs that a billing period of the
    bill covers to the end of their last hour (of the day's end, once the day is whole): a hash of the day's current
    runs and of the load ids of those periods."""
    runs = query(client, "SELECT cloud_account_id, toUnixTimestamp(toStartOfDay(hour)) AS day, "
                         "groupBitXor(cityHash64(hour, run_id)), toUnixTimestamp(max(hour)) + 3600 "
                         "FROM k8s_expense_current_runs "
                         "WHERE hour >= {first:DateTime('UTC')} AND hour < {last:DateTime('UTC')} "
                         "GROUP BY cloud_account_id, day", {"first": utc(first), "last": utc(last)},
                 action="reading the current runs")
    if not runs:
        return {}
    periods = query(client, f"SELECT toUnixTimestamp(BillingPeriodStart), toUnixTimestamp(BillingPeriodEnd), "
                            f"toUnixTimestamp(max(ChargePeriodEnd)), toString(any(load_id)) "
                            f"FROM {quoted_table(bill.table)} WHERE BillingPeriodEnd > {{first:DateTime('UTC')}} "
                            f"AND BillingPeriodStart < {{last:DateTime('UTC')}} GROUP BY _partition_id, "
                            "BillingPeriodStart, BillingPeriodEnd", {"first": utc(first), "last": utc(last)},
                    action="reading the bill's periods")
    triggers = {}
    for tenant, day, runs_hash, hours_end in runs:
        loads = sorted(load for start, end, charged_to, load in periods
                       if start <= day < end and charged_to >= hours_end)
        if loads:
            triggers[(tenant, int(day))] = _hash64(int(runs_hash), *loads)
    return triggers


def _hash64(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def reconcile_day(client: Any, bill: BillSettings, tenant: str, day: int, trigger: int) -> DayReconciled:
    """Reconcile one tenant-day: its factors as a new reconciliation unless its inputs are the latest one's; the
    ledger row last, which makes it current."""
    runs, resources = _resource_hours(client, tenant, day)
    lines = _bill_lines(client, bill, day, {r.key for r in resources if r.key}, {r.cluster_id for r in resources})
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
    summary = _summary(tenant, day, reconcile_id, changed, factors)
    insert(client, LEDGER, LEDGER_COLUMNS, [_ledger_row(summary, bill, trigger, inputs, factors)],
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


def _bill_lines(client: Any, bill: BillSettings, day: int, keys: set[str], clusters: set[str]) -> list[BillLines]:
    """The lines charged in the day that bill one of ``keys``, or carry the cluster tag of one of ``clusters``,
    summed per key, kind of charge, charge period and cluster tag."""
    if not keys and not clusters:
        return []
    rows = query(client, f"""
        SELECT {match_key('ResourceId')} AS key, ServiceCategory, ChargeCategory,
            toUnixTimestamp(ChargePeriodStart), toUnixTimestamp(ChargePeriodEnd), sum({bill.cost}), count(),
            {cluster_tag()} AS cluster
        FROM {quoted_table(bill.table)}
        WHERE BillingPeriodStart <= {{day:DateTime('UTC')}} AND BillingPeriodEnd > {{day:DateTime('UTC')}}
            AND ChargePeriodStart >= {{day:DateTime('UTC')}} AND ChargePeriodStart < {{next:DateTime('UTC')}}
            AND ({BILLED_LINES}) AND (key IN {{keys:Array(String)}} OR cluster IN {{clusters:Array(String)}})
        GROUP BY ALL""", {"day": utc(day), "next": utc(day + DAY), "keys": sorted(keys), "clusters": sorted(clusters)},
                 action="reading the day's bill lines")
    return [BillLines(key, service, category, int(start), int(end), Decimal(cost), int(count), cluster)
            for key, service, category, start, end, cost, count, cluster in rows]


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
