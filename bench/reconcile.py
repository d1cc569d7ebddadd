"""Reconciliation with the cloud bill at scale: what reconciling one day costs beside a year of other tenants, and what
reading the reconciled costs costs beside the list costs.

    .venv/bin/python bench/reconcile.py [--pods 2000] [--tenants 150] [--days 365] [--rows-per-hour 20]
        [--nodes-per-tenant 4] [--volumes-per-tenant 2] [--runs 5] [--day YYYY-MM-DD] [--keep | --reuse DIR]

Needs Debian's prometheus and promtool; about 8 minutes on the project's 2-core machine (the simulation and promtool
3, the fill 3, the pipeline 1.5 for the two stores). The golden tenant: a simulated EKS cluster (``devtools/bill.py``
``as_eks``) of ``--pods`` pods on ``--pods`` / 50 nodes (as ``bench/views.py``'s write path) over one whole UTC day,
``--day``, default the 15th of the last whole month: beside it every other account's billing period is a whole month,
as for most days the reconciliation's 62-day window holds (a day of the month in progress has only the month so far
beside it).
Its 24 hours are run by the real pipeline (``build_pipeline``, ``run_hours``, batched as ``KCW_BATCH_HOURS`` says)
from a local Prometheus, and its FOCUS bill (``write_focus_bill``) loaded with ``load_bill``, into two stores of one
embedded ClickHouse (one process opens one chDB path):

- store A (database ``golden_only``): the golden tenant alone;
- store B (the default database): the golden tenant beside ``--tenants`` synthetic tenants over ``--days`` days up to
  now: ``bench/views.py``'s ``fill`` (runs, ``--rows-per-hour`` rows of ``k8s_expenses``, metric samples, the
  rollups), and for each of their hours ``--nodes-per-tenant`` rows of ``k8s_nodes_hourly`` and
  ``--volumes-per-tenant`` of ``k8s_volumes_hourly`` (a claim each), a FOCUS line for each of those node-hours and
  volume-hours (a billing account per tenant, so a billing period per account and month: a partition each; indexed
  by resource as ``bill-load`` indexes what it loads), and a
  reconciliation of every tenant-day (its ``k8s_reconciliations`` row, a factor per node-hour and volume-hour in
  ``k8s_reconciled_factors``), each table then ``OPTIMIZE ... FINAL``. Not filled: the other tenants' daily tier.

Before measuring, the partitions the golden tenant's writes left in several parts are merged, in both stores alike.
Measured, median of ``--runs`` after a warm-up, A and B interleaved:

1. ``reconcile_days`` of the golden day, the whole call: finding the day, reading its resources and bill lines, the
   factors, their writing and the daily tier's rebuild of the day. The warm-up is the day's first reconciliation
   (``changed``); before each timed run a ledger row naming the latest reconciliation with other inputs is recorded
   (untimed), as a restated bill or a rerun hour leaves the day, so that every timed run computes and writes a new
   reconciliation. Each ClickHouse call of ``store/reconcile.py`` is timed by the step it names, the rebuild by its
   own; the rest is Python. Target: B / A about 1 (<= 1.5).
2. In store B, once cleanup has removed the factors of the reconciliations step 1 superseded (as each scheduler
   tick does), the golden tenant's reconciled costs against its list costs, by namespace, for the day and for one hour
   of it: ``SELECT namespace, sum(total_cost), count() FROM <view> WHERE cloud_account_id = ... AND hour >= ... AND
   hour < ... GROUP BY namespace`` on ``k8s_expenses_reconciled_current`` and on ``k8s_expenses_current`` (and the
   reconciled view in store A beside). Target: reconciled / plain <= 3. The reconciled view's ``total_cost_list`` must
   be the plain view's ``total_cost``: the same rows, the same sums (1e-9).

A missed target is explained: for a reconciliation step that grew, ``EXPLAIN ESTIMATE`` of its statement in A and B
(the parts and rows each table is read for); for a view, its planning time (``EXPLAIN PLAN``), the tables its plan
reads and their ``EXPLAIN ESTIMATE``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import clickhouse_connect  # noqa: E402
from views import RUN_ID, fill  # noqa: E402

from kubecost_worker import logs, wiring  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.devtools.bill import as_eks, write_focus_bill  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks  # noqa: E402
from kubecost_worker.devtools.simulation import simulate  # noqa: E402
from kubecost_worker.hours import DAY, HOUR, hour_starts  # noqa: E402
from kubecost_worker.pipeline import run_hours  # noqa: E402
from kubecost_worker.store import cleanup, migrations  # noqa: E402
from kubecost_worker.store import reconcile as reconciliation  # noqa: E402
from kubecost_worker.store.bill import load_bill, source_of  # noqa: E402
from kubecost_worker.store.clickhouse import ClickHouseSink  # noqa: E402

GOLDEN = "golden-eks"
GOLDEN_ONLY = "golden_only"
BILL = reconciliation.BillSettings("focus_bill", "EffectiveCost")
REL = 1e-9
TARGET_STORE, TARGET_VIEW = 1.5, 3.0
# The tables the reconciliation and the views read: merged in both stores alike before measuring, so that neither pays
# for unmerged parts the other does not have.
READ_TABLES = ("k8s_expense_runs", "k8s_expenses", "k8s_nodes_hourly", "k8s_volumes_hourly", "focus_bill",
               "focus_bill_resources", "k8s_reconciliations", "k8s_reconciled_factors")
REBUILD = "building the day again"
# A reconciliation's steps, by the actions its ClickHouse calls name (store/reconcile.py), in the order they run.
STEPS = (
    ("find the day (its runs, resources, bill periods)", ("reading the current runs", "reading the days' resources",
                                                          "looking the resources up in the bill",
                                                          "reading the bill's periods")),
    ("read the day's runs, nodes, volumes", ("reading the day's runs", "reading the day's nodes",
                                             "reading the day's volumes")),
    ("read the day's bill lines", ("reading the day's bill lines",)),
    ("read the latest reconciliation", ("reading the latest reconciliation",)),
    ("write the factors, the claims, the ledger row", ("writing the factors", "writing the claims",
                                                       "recording the reconciliation")),
    ("build the day again in the daily tier", (REBUILD,)),
)
COMPUTE = "the rest (Python: the factors, hashes)"
BY_NAMESPACE = ("SELECT namespace, sum(total_cost), count() FROM {view} WHERE cloud_account_id = {{t:String}} "
                "AND hour >= {{a:DateTime('UTC')}} AND hour < {{b:DateTime('UTC')}} "
                "GROUP BY namespace ORDER BY namespace")
PLAIN, RECONCILED = "k8s_expenses_current", "k8s_expenses_reconciled_current"


def fill_reconciliation(sink: ClickHouseSink, tenants: int, hours: int, first_hour: int, nodes: int,
                        volumes: int) -> None:
    """The reconciliation's tables for ``fill``'s tenants and hours: node-hours and volume-hours of their runs, the
    bill lines matching them, and a reconciliation of every tenant-day with its factors."""
    # The statements are built from our own integers: plain text, no query parameters to escape braces for.
    kinds = nodes + volumes

    def hour_at(h: str) -> str:
        return f"toDateTime({first_hour} + ({h}) * 3600, 'UTC')"

    def resource_id(t: str, k: str, node: str) -> str:
        suffix = f"leftPad(hex(toUInt32({t})), 8, '0'), leftPad(hex(toUInt16({k})), 8, '0')"
        return f"if({node}, concat('i-0', {suffix}), concat('vol-0', {suffix}))"

    def reconcile_id(t: str, day: str) -> str:
        """A tenant-day's reconciliation: one id for its ledger row and its factors."""
        return (f"toUUID(concat(leftPad(hex(toUInt32({t})), 8, '0'), '-0000-4000-9000-', "
                f"leftPad(hex(toUInt32(toRelativeDayNum({day}))), 12, '0')))")

    # node-hours, then volume-hours: the tenant fastest, the hour slowest (an insert block spans a month or two)
    for count, is_node in ((nodes, "true"), (volumes, "false")):
        t, k = f"number % {tenants}", f"intDiv(number, {tenants}) % {count} + 1"
        h = f"intDiv(number, {tenants * count})"
        tenant, hour, rid, run_id = (f"concat('tenant-', toString({t}))", hour_at(h), resource_id(t, k, is_node),
                                     RUN_ID.format(t=t, h=h))
        if is_node == "true":
            sql = ("INSERT INTO k8s_nodes_hourly (cloud_account_id, cluster_id, hour, node, provider_id, "
                   "instance_type, region, zone, arch, spot, running_minutes, cpu_cores, ram_bytes, gpu_count, "
                   "cpu_price, ram_price, gpu_price, price_source, cpu_cost, ram_cost, gpu_cost, allocated_cost, "
                   f"idle_cost, run_id, inserted_at) SELECT {tenant}, 'cluster', {hour}, "
                   f"concat('node-', toString({k})), concat('aws:///us-east-1a/', {rid}), 'm5.xlarge', 'us-east-1', "
                   "'us-east-1a', 'amd64', false, 60, 4, 16e9, 0, 0.02, 0.0025, 0, 'series', 0.08, 0.04, 0, 0.07, "
                   f"0.05, {run_id}, now64(3)")
        else:
            claim = (f"[tuple('ns-0', concat('app-', toString({k})), concat('app-', toString({k}), '-x1y2z'), '', "
                     "0.004)::Tuple(namespace String, workload_name String, pod String, pod_uid String, "
                     "pv_cost Float64)]")
            sql = ("INSERT INTO k8s_volumes_hourly (cloud_account_id, cluster_id, hour, volume, provider_id, "
                   "running_minutes, capacity_bytes, price, cost, claims, run_id, inserted_at) "
                   f"SELECT {tenant}, 'cluster', {hour}, concat('pvc-', toString({k})), {rid}, 60, 100e9, 0.00004, "
                   f"0.004, {claim}, {run_id}, now64(3)")
        sink.client.command(f"{sql} FROM numbers({tenants * hours * count}) SETTINGS max_insert_threads = 2")

    # The bill, one billing account (a tenant) after another: an insert block spans a few of its partitions (account,
    # month), not every one.
    t, h, r = f"intDiv(number, {hours * kinds})", f"intDiv(number % {hours * kinds}, {kinds})", f"number % {kinds}"
    node, k = f"{r} < {nodes}", f"if({r} < {nodes}, {r} + 1, {r} - {nodes} + 1)"
    hour, cost = hour_at(h), f"if({node}, 0.12, 0.004)"
    amount = f"toDecimal128({cost} * 0.95, 18)"
    tags = ("concat('{\"eks:cluster-name\": \"cluster\", \"kubernetes.io/cluster/cluster\": \"owned\", \"Name\": \"', "
            f"if({node}, 'node-', 'pvc-'), toString({k}), '\"}}')")
    sink.client.command(
        "INSERT INTO focus_bill (AvailabilityZone, BilledCost, BillingAccountId, BillingAccountName, BillingCurrency, "
        "BillingPeriodEnd, BillingPeriodStart, ChargeCategory, ChargeFrequency, ChargePeriodEnd, ChargePeriodStart, "
        "ChargeDescription, ConsumedQuantity, ConsumedUnit, ContractedCost, EffectiveCost, InvoiceIssuerName, "
        "ListCost, ListUnitPrice, PricingCategory, PricingQuantity, PricingUnit, ProviderName, PublisherName, "
        "RegionId, RegionName, ResourceId, ResourceType, ServiceCategory, Id, ServiceName, SkuId, SubAccountId, "
        f"Tags, load_id) SELECT 'us-east-1a', {amount}, leftPad(toString(100000 + {t}), 12, '0'), 'synthetic', "
        f"'USD', toDateTime(addMonths(toStartOfMonth({hour}), 1), 'UTC'), toDateTime(toStartOfMonth({hour}), 'UTC'), "
        f"'Usage', 'Usage-Based', {hour} + 3600, {hour}, if({node}, "
        "'$0.12 per On Demand Linux m5.xlarge Instance Hour', "
        "'$0.08 per GB-month of General Purpose (gp3) provisioned storage'), toDecimal128(1, 18), 'Hours', "
        f"{amount}, {amount}, 'Amazon Web Services, Inc.', toDecimal128({cost}, 18), toDecimal128({cost}, 18), "
        "'Standard', toDecimal128(1, 18), 'Hours', 'AWS', 'Amazon Web Services, Inc.', 'us-east-1', 'us-east-1', "
        f"{resource_id(t, k, node)}, if({node}, 'instance', 'volume'), if({node}, 'Compute', 'Storage'), "
        f"toString(number), 'Amazon Elastic Compute Cloud', if({node}, 'JRTCKXETXF6YS6EN', 'VKRHB8WMJTSH5FZ3'), "
        f"concat('tenant-', toString({t})), {tags}, "
        # one load wrote each period, as bill-load does: an id per account and month
        f"toUUID(concat(leftPad(hex(toUInt32({t})), 8, '0'), '-0000-4000-a000-', "
        f"leftPad(hex(toUInt32(toYYYYMM({hour}))), 12, '0'))) FROM numbers({tenants * hours * kinds}) "
        "SETTINGS max_partitions_per_insert_block = 0, max_insert_threads = 2")

    # every tenant-day with hours reconciled, two days after the day (the bill lags), with its factors
    first_day, last_day = first_hour // DAY * DAY, (first_hour + (hours - 1) * HOUR) // DAY * DAY
    t, day = f"number % {tenants}", f"toDateTime({first_day} + intDiv(number, {tenants}) * {DAY}, 'UTC')"
    per_day = f"24 * ({nodes} * 0.12 + {volumes} * 0.004)"
    sink.client.command(
        "INSERT INTO k8s_reconciliations (cloud_account_id, bill_day, reconcile_id, trigger, inputs, bill_cost, "
        "list_cost, modelled_cost, billed_cost, node_hours_matched, node_hours_unmatched, volume_hours_matched, "
        "volume_hours_unmatched, unmatched_bill_lines, unmatched_billed_cost, computed_at) "
        f"SELECT concat('tenant-', toString({t})), toDate({day}), {reconcile_id(t, day)}, cityHash64(number), "
        f"cityHash64(number, 1), 'EffectiveCost', {per_day}, {per_day}, toDecimal128({per_day} * 0.95, 18), "
        f"24 * {nodes}, 0, 24 * {volumes}, 0, 0, toDecimal128(0, 18), "
        f"least(toDateTime64({day} + {2 * DAY}, 6, 'UTC'), now64(6)) "
        f"FROM numbers({tenants * ((last_day - first_day) // DAY + 1)})")
    t, r, h = f"number % {tenants}", f"intDiv(number, {tenants}) % {kinds}", f"intDiv(number, {tenants * kinds})"
    node, k = f"{r} < {nodes}", f"if({r} < {nodes}, {r} + 1, {r} - {nodes} + 1)"
    hour, cost = hour_at(h), f"if({node}, 0.12, 0.004)"
    sink.client.command(
        "INSERT INTO k8s_reconciled_factors (cloud_account_id, cluster_id, hour, kind, resource, resource_id, "
        "period_start, period_end, modelled_cost, factor, matched, period_modelled_cost, period_billed_cost, "
        f"bill_lines, reconcile_id) SELECT concat('tenant-', toString({t})), 'cluster', {hour}, "
        f"if({node}, 'node', 'volume'), concat(if({node}, 'node-', 'pvc-'), toString({k})), "
        f"{resource_id(t, k, node)}, {hour}, {hour} + 3600, {cost}, 0.95, true, {cost}, "
        f"toDecimal128({cost} * 0.95, 18), 1, {reconcile_id(t, f'toStartOfDay({hour})')} "
        f"FROM numbers({tenants * hours * kinds}) SETTINGS max_insert_threads = 2")
    reconciliation.index_bill(sink.client, "focus_bill")  # as bill-load does for the periods it loads
    for table in ("k8s_nodes_hourly", "k8s_volumes_hourly", "focus_bill", "focus_bill_resources",
                  "k8s_reconciliations", "k8s_reconciled_factors"):
        sink.client.command(f"OPTIMIZE TABLE {table} FINAL SETTINGS optimize_skip_merged_partitions = 1")


def default_day(now: float) -> int:
    """The 15th of the last whole month."""
    month = dt.datetime.fromtimestamp(now, dt.timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int((month - dt.timedelta(days=1)).replace(day=15).timestamp())


def day_fits(day: int, days: int, now: float) -> bool:
    """A whole day past, within the synthetic tenants' ``days``: the golden day is beside their hours."""
    return first_hour_of_year(days, now) <= day <= int(now) // DAY * DAY - DAY


def parse_day(text: str) -> int:
    return int(dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc).timestamp())


def first_hour_of_year(days: int, now: float) -> int:
    """The synthetic tenants' first hour, where ``bench/views.py`` starts them: ``days`` before the current hour."""
    return (int(now) // HOUR - days * 24) * HOUR


def golden_day(workdir: Path, pods: int, day: int) -> tuple[Path, Path]:
    """The golden tenant's day in a Prometheus data directory, and its FOCUS bill: their paths."""
    sim = as_eks(simulate([GOLDEN], day, 24, nodes=max(3, pods // 50), pods=pods))
    metrics = workdir / "metrics.om"
    sim.write_openmetrics(metrics)
    bill, _ = write_focus_bill(sim, workdir / "bill.csv")
    create_blocks(metrics, workdir / "tsdb")
    metrics.unlink()  # gigabytes, and Prometheus holds it now
    return workdir / "tsdb", bill


def merge_parts(sink: ClickHouseSink) -> None:
    """Every partition of the tables read in one part, as the background merges leave them in time: those the golden
    tenant's writes touched (the fill merged the rest)."""
    for table in READ_TABLES:
        partitions = sink.query("SELECT partition_id FROM system.parts WHERE active AND database = currentDatabase() "
                                "AND table = {table:String} GROUP BY partition_id HAVING count() > 1",
                                {"table": table})
        for (partition,) in partitions:
            sink.client.command(f"OPTIMIZE TABLE {table} PARTITION ID '{partition}' FINAL")


class StepClock:
    """Seconds spent in each ClickHouse call of ``store/reconcile.py``, by the action it names, and in the daily
    tier's rebuild it ends with; the statements too, for ``EXPLAIN`` of a step that grows."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.statements: dict[str, tuple[str, dict]] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The module's own calls timed where it makes them, its code unchanged; put back after."""
        query, insert, classified = reconciliation.query, reconciliation.insert, reconciliation.classified
        days = getattr(reconciliation, "days", None)
        rebuild = getattr(days, "rebuild", None)

        def timed_query(client: Any, sql: str, parameters: dict | None = None, *args: Any, action: str = "",
                        **kwargs: Any) -> Any:
            self.statements[step_of(action)] = (sql, parameters or {})
            with self.timing(step_of(action)):
                return query(client, sql, parameters, *args, action=action, **kwargs)

        def timed_insert(client: Any, *args: Any, action: str = "", **kwargs: Any) -> Any:
            with self.timing(step_of(action)):
                return insert(client, *args, action=action, **kwargs)

        def timed_rebuild(*args: Any, **kwargs: Any) -> Any:
            with self.timing(REBUILD):
                return rebuild(*args, **kwargs)

        @contextlib.contextmanager
        def timed_command(action: str) -> Iterator[None]:  # the module's own statements (INSERT ... SELECT)
            with self.timing(step_of(action)), classified(action):
                yield

        reconciliation.query, reconciliation.insert = timed_query, timed_insert
        reconciliation.classified = timed_command
        if rebuild is not None:
            days.rebuild = timed_rebuild
        try:
            yield
        finally:
            reconciliation.query, reconciliation.insert, reconciliation.classified = query, insert, classified
            if rebuild is not None:
                days.rebuild = rebuild

    @contextlib.contextmanager
    def timing(self, step: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] += time.perf_counter() - began


def step_of(action: str) -> str:
    return action.split(" of ")[0]  # "writing the factors of <tenant> <day>": the step without its day


def force_new_reconciliation(sink: ClickHouseSink, day: int) -> None:
    """A ledger row naming the day's latest reconciliation with other inputs, as a restated bill or a rerun hour
    leaves the day: the next reconciliation computes and writes it anew."""
    sink.client.command(
        "INSERT INTO k8s_reconciliations SELECT * REPLACE (0 AS inputs, now64(6) AS computed_at) "
        "FROM k8s_reconciliations WHERE cloud_account_id = {t:String} AND bill_day = toDate({day:DateTime('UTC')}) "
        "ORDER BY computed_at DESC LIMIT 1", parameters={"t": GOLDEN, "day": day})


def reconcile_once(sink: ClickHouseSink, clock: StepClock, day: int) -> tuple[float, dict[str, float], Any]:
    clock.seconds.clear()
    began = time.perf_counter()
    done = reconciliation.reconcile_days(sink.client, BILL, [GOLDEN], day, day + DAY)
    seconds = time.perf_counter() - began
    assert len(done) == 1 and done[0].tenant == GOLDEN and done[0].changed, done
    steps = {label: sum(clock.seconds.get(action, 0.0) for action in actions) for label, actions in STEPS}
    steps[COMPUTE] = seconds - sum(clock.seconds.values())
    return seconds, steps, done[0]


def measure_reconcile(stores: dict[str, ClickHouseSink], day: int, runs: int) -> dict:
    clock = StepClock()
    seconds: dict[str, list[float]] = defaultdict(list)
    steps: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in stores}
    with clock.installed():
        for name, sink in stores.items():
            force_new_reconciliation(sink, day)  # a store kept and measured again has the day reconciled
            _, _, first = reconcile_once(sink, clock, day)  # warm-up: the day's first reconciliation
        for i in range(runs):
            for name in list(stores)[::1 if i % 2 == 0 else -1]:
                force_new_reconciliation(stores[name], day)
                took, parts, _ = reconcile_once(stores[name], clock, day)
                seconds[name].append(took)
                for label, value in parts.items():
                    steps[name][label].append(value)
    out = {"seconds": {name: statistics.median(s) for name, s in seconds.items()},
           "steps": {label: {name: statistics.median(steps[name][label]) for name in stores}
                     for label in [*dict(STEPS), COMPUTE]},
           "day": {"list_cost": first.list_cost, "modelled_cost": first.modelled_cost,
                   "billed_cost": float(first.billed_cost), "matched": first.matched, "unmatched": first.unmatched},
           "why": []}
    for label, actions in STEPS:
        a, b = out["steps"][label]["A"], out["steps"][label]["B"]
        if b - a > 0.01 and b > TARGET_STORE * a:  # grew with the store, by more than the noise of a query
            for action in actions:
                if action in clock.statements:
                    sql, params = clock.statements[action]
                    out["why"] += [f"{label}: {action}", *estimate_lines(stores, sql, params)]
    return out


def estimate_lines(stores: dict[str, ClickHouseSink], sql: str, params: dict) -> list[str]:
    """Per table, the parts and rows ClickHouse would read for ``sql`` in each store (``EXPLAIN ESTIMATE``)."""
    found = {name: {table: (int(parts), int(rows)) for _, table, parts, rows, _ in
                    sink.query(f"EXPLAIN ESTIMATE {sql}", params)} for name, sink in stores.items()}
    lines = [f"  {'table (EXPLAIN ESTIMATE)':<28}" + "".join(f"{name + ' parts':>10}{name + ' rows':>12}"
                                                          for name in stores)]
    for table in sorted(set().union(*found.values())):
        lines.append(f"  {table:<28}" + "".join(f"{found[name].get(table, (0, 0))[0]:>10,}"
                                                f"{found[name].get(table, (0, 0))[1]:>12,}" for name in stores))
    return lines


def median_ms(run: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b), 1.0)


def same_answer(rows: list, again: list) -> bool:
    """(namespace, sum, count) rows equal, but for the sums' last bits: ClickHouse adds floats in no fixed order."""
    return len(rows) == len(again) and all((n, c) == (m, d) and close(s, t)
                                           for (n, s, c), (m, t, d) in zip(rows, again))


def measure_views(stores: dict[str, ClickHouseSink], day: int, runs: int) -> list[dict]:
    big, alone = stores["B"], stores["A"]
    plain_sql, reconciled_sql = BY_NAMESPACE.format(view=PLAIN), BY_NAMESPACE.format(view=RECONCILED)
    found = []
    for label, start, end in (("the day (24 hours)", day, day + DAY), ("one hour of it", day + 12 * HOUR,
                                                                        day + 13 * HOUR)):
        params = {"t": GOLDEN, "a": start, "b": end}
        cases = (("plain", big, plain_sql), ("reconciled", big, reconciled_sql), ("reconciled A", alone,
                                                                                  reconciled_sql))
        answers = {case: sink.query(sql, params) for case, sink, sql in cases}  # warm: the first run reads the marks
        assert same_answer(answers["reconciled"], answers["reconciled A"])
        times: dict[str, list[float]] = defaultdict(list)
        for i in range(runs):
            for case, sink, sql in cases[::1 if i % 2 == 0 else -1]:
                began = time.perf_counter()
                rows = sink.query(sql, params)
                times[case].append((time.perf_counter() - began) * 1000)
                assert same_answer(rows, answers[case]), case
        result = {"label": label, **{case: statistics.median(t) for case, t in times.items()},
                  **list_totals(big, params, answers["plain"], answers["reconciled"]), "why": []}
        result["ratio"] = result["reconciled"] / result["plain"]
        if result["ratio"] > TARGET_VIEW:
            for view, sql in ((RECONCILED, reconciled_sql), (PLAIN, plain_sql)):
                plan = big.query(f"EXPLAIN PLAN {sql}", params)
                reads = sum("ReadFromMergeTree" in line for line, in plan)
                planned = median_ms(lambda: big.query(f"EXPLAIN PLAN {sql}", params), runs)
                result["why"] += [f"{view}: planning alone (EXPLAIN PLAN) {planned:.1f} ms, {reads} table reads",
                                  *estimate_lines(stores, sql, params)]
        found.append(result)
    return found


def list_totals(sink: ClickHouseSink, params: dict, plain: list, reconciled: list) -> dict:
    """The reconciled view's list costs are the plain view's costs: the same rows, the same sums."""
    listed = sink.query(BY_NAMESPACE.format(view=RECONCILED).replace("sum(total_cost)", "sum(total_cost_list)"), params)
    assert same_answer(listed, plain), (listed, plain)
    assert [(n, c) for n, _, c in reconciled] == [(n, c) for n, _, c in plain], (reconciled, plain)
    return {"rows": sum(c for _, _, c in plain), "plain_total": sum(s for _, s, _ in plain),
            "list_total": sum(s for _, s, _ in listed), "reconciled_total": sum(s for _, s, _ in reconciled)}


def measure(workdir: Path, pods: int = 2000, tenants: int = 150, days: int = 365, rows_per_hour: int = 20,
            nodes_per_tenant: int = 4, volumes_per_tenant: int = 2, runs: int = 5, day: int | None = None,
            say: Callable[[str], None] = print) -> dict:
    """Every figure of the module's docstring, from stores built under ``workdir``."""
    now = time.time()
    day = default_day(now) if day is None else day
    first = first_hour_of_year(days, now)
    assert day_fits(day, days, now), "the golden day must be a whole day past, within the synthetic tenants' days"
    workdir.mkdir(parents=True, exist_ok=True)
    out = described(pods, tenants, days, runs, day)
    began = time.perf_counter()
    tsdb, bill = golden_day(workdir, pods, day)
    say(f"golden tenant: {pods:,} pods on {out['nodes']} nodes, {out['day']} (24 hours), simulated in "
        f"{time.perf_counter() - began:.0f} s")
    stores = open_stores(workdir)
    big = stores["B"]
    try:
        for sink in stores.values():
            migrations.migrate(sink.client)
        began = time.perf_counter()
        fill(big, tenants, days * 24, rows_per_hour, first)
        fill_reconciliation(big, tenants, days * 24, first, nodes_per_tenant, volumes_per_tenant)
        out["filled_s"] = time.perf_counter() - began
        out["filled"] = {table: big.query(f"SELECT count() FROM {table}")[0][0] for table in (
            "k8s_expenses", "k8s_nodes_hourly", "k8s_volumes_hourly", "focus_bill", "k8s_reconciliations",
            "k8s_reconciled_factors")}
        say(f"store B: {tenants} tenants x {days} days, filled in {out['filled_s']:.0f} s: "
            + ", ".join(f"{table} {rows:,}" for table, rows in out["filled"].items()))
        with LocalPrometheus(tsdb) as prometheus:
            config = load_config({"KCW_THANOS_URL": prometheus, "KCW_CLICKHOUSE_URL": store_url(workdir)})
            for name, sink in stores.items():
                began = time.perf_counter()
                done = run_hours(wiring.build_pipeline(config, sink), [GOLDEN], hour_starts(day, day + DAY))
                assert done.failed == 0 and done.done == 24, done
                loaded = load_bill(sink.client, [source_of(str(bill))])
                say(f"store {name}: the golden day through the pipeline and its bill loaded in "
                    f"{time.perf_counter() - began:.0f} s ({done.rows:,} rows; {loaded.line()})")
        return measured(stores, day, runs, out)
    finally:
        for sink in stores.values():
            sink.close()


def described(pods: int, tenants: int, days: int, runs: int, day: int) -> dict:
    return {"pods": pods, "nodes": max(3, pods // 50), "tenants": tenants, "days": days, "runs": runs,
            "day": time.strftime("%Y-%m-%d", time.gmtime(day))}


def store_url(workdir: Path) -> str:
    return f"chdb://{workdir / 'ch'}"


def open_stores(workdir: Path) -> dict[str, ClickHouseSink]:
    url = store_url(workdir)
    big = ClickHouseSink.open(url)
    big.client.command(f"CREATE DATABASE IF NOT EXISTS {GOLDEN_ONLY}")
    return {"A": ClickHouseSink(clickhouse_connect.get_client(dsn=url, database=GOLDEN_ONLY), url=url), "B": big}


def measured(stores: dict[str, ClickHouseSink], day: int, runs: int, out: dict) -> dict:
    """``out`` with the figures of the stores, which hold the golden day and its bill: their parts merged alike, the
    reconciliation timed, then the views, once cleanup has removed the factors of the reconciliations the timing
    superseded (as each scheduler tick's cleanup does)."""
    for sink in stores.values():
        merge_parts(sink)
    out["reconcile"] = measure_reconcile(stores, day, runs)
    for sink in stores.values():
        cleanup.collect_garbage(sink.client, None)
    out["views"] = measure_views(stores, day, runs)
    return out


def measure_again(workdir: Path, pods: int, tenants: int, days: int, runs: int, day: int | None) -> dict:
    """The figures again from the stores a ``--keep`` run left in ``workdir``, migrated to this checkout first: the
    same data, the code of now (``--pods``, ``--tenants``, ``--days`` and ``--day`` must be the kept run's)."""
    day = default_day(time.time()) if day is None else day
    stores = open_stores(workdir)
    try:
        for sink in stores.values():
            migrations.migrate(sink.client)
        return measured(stores, day, runs, described(pods, tenants, days, runs, day))
    finally:
        for sink in stores.values():
            sink.close()


def figures(out: dict) -> list[tuple[str, str, str, bool | None]]:
    """The headline figures, (figure, measured, target, met), as ``bench/run.py`` prints them."""
    r = out["reconcile"]["seconds"]
    ratio = r["B"] / r["A"]
    rows = [(f"reconcile_days, a {out['pods']:,}-pod day: alone / beside {out['tenants']} tenants x {out['days']} days",
             f"{r['A']:.2f} s / {r['B']:.2f} s: {ratio:.2f}x", f"about 1 (<= {TARGET_STORE})", ratio <= TARGET_STORE)]
    for v in out["views"]:
        rows.append((f"k8s_expenses_reconciled_current / _current by namespace, {v['label']}",
                     f"{v['reconciled']:.1f} / {v['plain']:.1f} ms: {v['ratio']:.2f}x", f"<= {TARGET_VIEW:g}",
                     v["ratio"] <= TARGET_VIEW))
    return rows


def print_report(out: dict) -> None:
    rec, d = out["reconcile"], out["reconcile"]["day"]
    print(f"\nthe day reconciled: list {d['list_cost']:.2f}, of it matched {d['modelled_cost']:.2f}, billed "
          f"{d['billed_cost']:.2f}; {d['matched']:,} resource-hours matched, {d['unmatched']:,} not")
    ratio = rec["seconds"]["B"] / rec["seconds"]["A"]
    head = f"reconcile_days of the {out['pods']:,}-pod day, median of {out['runs']}"
    print(f"\n{head:<52} {'A s':>7} {'B s':>7} {'B / A':>7}  target about 1 (<= {TARGET_STORE})")
    print(f"{'the whole call':<52} {rec['seconds']['A']:>7.3f} {rec['seconds']['B']:>7.3f} {ratio:>6.2f}x  "
          f"{'yes' if ratio <= TARGET_STORE else 'NO'}")
    for label, step in rec["steps"].items():
        share = f"{step['B'] / step['A']:>6.2f}x" if step["A"] > 0 else ""
        print(f"{'  ' + label:<52} {step['A']:>7.3f} {step['B']:>7.3f} {share:>7}")
    if rec["why"]:
        print("\nthe steps store B pays more for:")
        print("\n".join(rec["why"]))
    print(f"\n{'the golden tenant by namespace, median of ' + str(out['runs']):<44} {'plain ms':>9} "
          f"{'reconciled':>11} {'rec. / plain':>13}  target <= {TARGET_VIEW:g}  {'reconciled in A':>16}")
    for v in out["views"]:
        print(f"{v['label']:<44} {v['plain']:>9.1f} {v['reconciled']:>11.1f} {v['ratio']:>12.2f}x  "
              f"{'yes' if v['ratio'] <= TARGET_VIEW else 'NO':<12} {v['reconciled A']:>16.1f}")
    for v in out["views"]:
        print(f"  {v['label']}: {v['rows']:,} rows; total_cost of the plain view {v['plain_total']:.6f} = "
              f"total_cost_list of the reconciled one {v['list_total']:.6f}; reconciled {v['reconciled_total']:.6f}")
    for v in out["views"]:
        if v["why"]:
            print(f"\nwhy, {v['label']} (planning in store B):")
            print("\n".join(v["why"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000, help="pods of the golden tenant")
    parser.add_argument("--tenants", type=int, default=150, help="synthetic tenants beside it in store B")
    parser.add_argument("--days", type=int, default=365, help="days of the synthetic tenants, up to now")
    parser.add_argument("--rows-per-hour", type=int, default=20, help="k8s_expenses rows of a synthetic tenant-hour")
    parser.add_argument("--nodes-per-tenant", type=int, default=4, help="node-hours of a synthetic tenant-hour")
    parser.add_argument("--volumes-per-tenant", type=int, default=2, help="volume-hours of a synthetic tenant-hour")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--day", type=parse_day, help="the golden day, YYYY-MM-DD (UTC); default: the 15th of the "
                                                      "last whole month")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (stores, Prometheus data)")
    parser.add_argument("--reuse", type=Path, metavar="DIR", help="measure again on the stores a --keep run kept in "
                                                                  "DIR, migrated to this checkout (minutes saved)")
    args = parser.parse_args()
    logs.configure("text", "error")  # the simulation's node without prices warns every hour
    if args.day is not None and not day_fits(args.day, args.days, time.time()):
        parser.error("--day must be a whole day past, within the synthetic tenants' --days")
    if args.reuse:
        print_report(measure_again(args.reuse, args.pods, args.tenants, args.days, args.runs, args.day))
        return
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-reconcile-"))
    try:
        print_report(measure(workdir, args.pods, args.tenants, args.days, args.rows_per_hour, args.nodes_per_tenant,
                             args.volumes_per_tenant, args.runs, args.day))
    finally:
        if args.keep:
            print(f"\nkept: {workdir}")
        else:
            shutil.rmtree(workdir)  # gigabytes of Prometheus data and stores


if __name__ == "__main__":
    main()
