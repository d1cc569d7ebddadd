"""OptScale's expenses (docs/optscale.md): the daily costs of ``k8s_expenses_daily`` written into OptScale's
``expenses`` table, a ``CollapsingMergeTree(sign)``, as its own importers write it.

For each tenant and UTC day of the window the export compares what the target holds (its live rows: each
resource-day's rows grouped by cost, the signs summed) with what it should hold (the day's cost of each mapped
resource) and writes only the corrections: a new resource-day ``+1``; a changed cost ``-1`` of the old row and
``+1`` of the new; a resource-day gone after a rerun ``-1``. The target is the state: nothing else is kept, an
export interrupted half-way is finished by the next one, and an export of unchanged data writes nothing (costs
compared bit for bit: the view sums them exactly).

One export at a time writes a tenant's rows of a target table: it holds a lease the target keeps
(``store/lease.py``), and another export waits for it. The export owns the tenant's rows of the days it exports:
a live row it would not write is cancelled. Resources without an OptScale id in ``optscale_resource_ids`` are left
out and counted; they are written by the first export after they are mapped.

``--reconciled`` writes the costs reconciled with the cloud bill (``daily_source``: the view's SELECT over the
reconciled hourly rows and the sealed days' reconciled sums; a day not reconciled costs its list cost). As the export
owns the rows of the days it exports, a target takes one kind of cost: a list export after a reconciled one writes
the list costs back.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..errors import TransientError
from ..hours import DAY, whole_days
from ..store import lease, schema
from ..store.client import query
from ..store.cluster import quote_identifier, quoted_table

# OptScale's DDL (diworker's ClickHouse migration), with the table's name: --create-table runs it, tests use it.
EXPENSES_DDL = ("CREATE TABLE IF NOT EXISTS {table} (cloud_account_id String, resource_id String, date DateTime, "
                "cost Float64, sign Int8) ENGINE = CollapsingMergeTree(sign) PARTITION BY toYYYYMM(date) "
                "ORDER BY (cloud_account_id, date, resource_id)")
COLUMNS = ["cloud_account_id", "resource_id", "date", "cost", "sign"]

# One export at a time per target table and tenant, through a lease the target holds (store/lease.py): an export
# of a month takes about a second, so a holder killed mid-export delays the next one by the lease at most.
LEASE_SECONDS = 300.0
LEASE_WAIT_SECONDS = LEASE_SECONDS + 30.0
LEASES_TABLE = "kcw_export_leases"  # beside the target table, in its database
MAX_PASSES = 3
# What a failure of the export names: the work its caller classifies too, so a read failing here says the same.
EXPORTING = "exporting to OptScale's expenses table"

Key = tuple[str, int]  # (OptScale resource id, the day's midnight in unix seconds)
DAILY_VIEW = "k8s_expenses_daily"
# What the view reads its costs from, and where the same costs reconciled with the bill are: the hours of days not
# sealed (the reconciled view's total_cost is the reconciled one) and the sealed days' daily sums. The view is
# k8s_expenses_daily for every reader; the reconciled export alone pays for the reconciled view's joins.
RECONCILED_SOURCES = (("FROM k8s_expenses_current", "FROM k8s_expenses_reconciled_current"),
                      (", total_cost_exact,", ", total_cost_reconciled_exact,"))


@dataclass(frozen=True)
class Correction:
    resource_id: str
    date: int
    cost: float
    sign: int


@dataclass
class Exported:
    """What one tenant's export did."""

    tenant: str
    days: int
    resources: int = 0        # resource-days that should be in the target
    added: int = 0            # +1 rows written
    cancelled: int = 0        # -1 rows written
    unmapped: int = 0         # resource-days left out: no OptScale id
    unmapped_cost: float = 0.0

    def line(self) -> str:
        return (f"export-optscale: {self.tenant}: {self.days} days, {self.resources} resource-days, "
                f"{self.added} rows +1, {self.cancelled} rows -1, "
                f"{self.unmapped} resource-days without an OptScale id (cost {self.unmapped_cost:.6f} left out)")


def corrections(live: dict[Key, dict[float, int]], wanted: dict[Key, float]) -> list[Correction]:
    """The rows that turn ``live`` (per resource-day: cost -> sum of the signs of the rows of that cost) into
    ``wanted`` (per resource-day: its cost), in key order. A resource-day already holding exactly one row of its
    wanted cost needs nothing; any other live row is cancelled by its opposite, then the wanted row added."""
    out: list[Correction] = []
    for key in sorted(live.keys() | wanted.keys()):
        held = {cost: n for cost, n in live.get(key, {}).items() if n}
        cost = wanted.get(key)
        if cost is not None and held == {cost: 1}:
            continue
        for old, n in sorted(held.items()):
            out.extend(Correction(key[0], key[1], old, -1 if n > 0 else 1) for _ in range(abs(n)))
        if cost is not None:
            out.append(Correction(key[0], key[1], cost, 1))
    return out


def default_window(now: float | None = None) -> tuple[int, int]:
    """Yesterday and today so far (UTC): what the hourly export re-exports, late reruns of yesterday included."""
    now = int(time.time() if now is None else now)
    return now - now % DAY - DAY, now


def daily_source(reconciled: bool) -> str:
    """OptScale's daily view, or the same with its costs reconciled with the cloud bill: its SELECT with the
    reconciled sources in the place of its own (one home of OptScale's resource ids and days: the view)."""
    if not reconciled:
        return DAILY_VIEW
    select = schema.view_select(DAILY_VIEW)
    for listed, reconciled_source in RECONCILED_SOURCES:
        if select.count(listed) != 1:
            raise AssertionError(f"{DAILY_VIEW} no longer reads {listed!r} once: RECONCILED_SOURCES must follow it")
        select = select.replace(listed, reconciled_source)
    return f"({schema.as_installed(select)})"


def wanted_costs(source: Any, tenant: str, start: int, end: int,
                 reconciled: bool = False) -> tuple[dict[Key, float], int, float]:
    """Per OptScale resource and day, the cost the target should hold (``reconciled``: the cost reconciled with the
    cloud bill); and the resource-days without an id and their cost. Resources mapped to one OptScale id add up
    (``math.fsum``: independent of their order)."""
    rows = query(
        source,
        f"SELECT d.day, d.cloud_resource_id, d.cost, m.resource_id FROM {daily_source(reconciled)} AS d "
        "LEFT JOIN (SELECT cloud_resource_id, argMax(resource_id, updated_at) AS resource_id "
        "           FROM optscale_resource_ids WHERE cloud_account_id = {tenant:String} "
        "           GROUP BY cloud_resource_id) AS m ON d.cloud_resource_id = m.cloud_resource_id "
        "WHERE d.cloud_account_id = {tenant:String} AND d.day >= toDate(toDateTime({start:Int64}, 'UTC')) "
        "AND d.day < toDate(toDateTime({end:Int64}, 'UTC'))",
        {"tenant": tenant, "start": start, "end": end}, action=EXPORTING)
    parts: dict[Key, list[float]] = defaultdict(list)
    unmapped, unmapped_cost = 0, []
    for day, _, cost, resource_id in rows:
        if resource_id:
            parts[(resource_id, _midnight(day))].append(cost)
        else:
            unmapped += 1
            unmapped_cost.append(cost)
    return {key: math.fsum(costs) for key, costs in parts.items()}, unmapped, math.fsum(unmapped_cost)


def live_rows(target: Any, table: str, tenant: str, start: int, end: int) -> dict[Key, dict[float, int]]:
    """The target's rows of the tenant and days, per resource-day: cost -> the sum of their signs (rows a merge
    has not collapsed yet are counted as they are)."""
    rows = query(
        target,
        f"SELECT resource_id, toUInt32(date), cost, sum(sign) FROM {quoted_table(table)} "
        "WHERE cloud_account_id = {tenant:String} AND date >= toDateTime({start:Int64}) "
        "AND date < toDateTime({end:Int64}) GROUP BY resource_id, date, cost",
        {"tenant": tenant, "start": start, "end": end}, action=EXPORTING)
    live: dict[Key, dict[float, int]] = defaultdict(dict)
    for resource_id, date, cost, n in rows:
        live[(resource_id, int(date))][cost] = int(n)
    return live


def export_tenant(source: Any, target: Any, table: str, tenant: str, start: int, end: int,
                  lease_seconds: float = LEASE_SECONDS, wait_seconds: float = LEASE_WAIT_SECONDS,
                  reconciled: bool = False) -> Exported:
    """Bring the target's rows of ``tenant`` and the days of ``[start, end)`` to the view's costs (``reconciled``:
    those reconciled with the cloud bill), holding the target's lease on them: two exports at once would both write
    the same corrections, counting them twice."""
    start, end = whole_days(start, end)  # OptScale keeps a row per resource and day: never a part of a day alone
    wanted, unmapped, unmapped_cost = wanted_costs(source, tenant, start, end, reconciled)
    done = Exported(tenant, (end - start) // DAY, len(wanted), unmapped=unmapped, unmapped_cost=unmapped_cost)
    held = lease.acquire(target, _leases_table(table), f"export-optscale:{table}:{tenant}", lease_seconds,
                         wait_seconds)
    try:
        _correct(target, table, done, wanted, start, end, held)
    except BaseException:
        with contextlib.suppress(Exception):  # the export's own failure is the one to report
            held.release()
        raise
    held.release()
    return done


def _correct(target: Any, table: str, done: Exported, wanted: dict[Key, float], start: int, end: int,
             held: lease.Lease) -> None:
    # A merge between the read and the write can change a resource-day whose rows do not pair up (written twice
    # by an export before the lease, or by hand): the write is read back and corrected until it holds.
    for _ in range(MAX_PASSES):
        fixes = corrections(live_rows(target, table, done.tenant, start, end), wanted)
        if not fixes:
            return
        held.check()
        # one insert: a block of fewer rows than max_insert_block_size is one part, written whole or not at all
        target.insert(table, [[done.tenant, c.resource_id, c.date, c.cost, c.sign] for c in fixes],
                      column_names=COLUMNS)
        done.added += sum(c.sign > 0 for c in fixes)
        done.cancelled += sum(c.sign < 0 for c in fixes)
    raise TransientError(f"export-optscale: {done.tenant}: the target's rows still differ from the view after "
                         f"{MAX_PASSES} passes (something else writes them); the next export corrects them")


def tenants_in(source: Any, start: int, end: int) -> list[str]:
    """The tenants with runs recorded for hours of the window (the ledger: small, and keyed by tenant and hour)."""
    start, end = whole_days(start, end)
    return [t for (t,) in query(
        source,
        "SELECT DISTINCT cloud_account_id FROM k8s_expense_runs WHERE hour >= toDateTime({start:Int64}) "
        "AND hour < toDateTime({end:Int64}) ORDER BY cloud_account_id",
        {"start": start, "end": end}, action=EXPORTING)]


def create_table(target: Any, table: str) -> None:
    """OptScale's expenses table (``--create-table``), and the leases beside it."""
    if "." in table:
        target.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(table.split('.')[0])}")
    target.command(EXPENSES_DDL.format(table=quoted_table(table)))
    create_leases_table(target, table)


def create_leases_table(target: Any, table: str) -> None:
    """The table of the leases the exports into ``table`` take, if it is missing: once per export run, before its
    tenants."""
    lease.create_table(target, _leases_table(table))


def _leases_table(table: str) -> str:
    database = table.split(".")[0] if "." in table else None
    return quoted_table(f"{database}.{LEASES_TABLE}" if database else LEASES_TABLE)


def _midnight(day: Any) -> int:
    return (day.toordinal() - 719163) * DAY  # 719163: date(1970, 1, 1).toordinal()
