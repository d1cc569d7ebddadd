"""The daily tier: each tenant's UTC days summed from their current hourly rows, kept for years after the hours
expire (docs/storage.md, "The daily tier").

A **day build** sums a tenant-day's current hourly rows (``k8s_expenses_current``, ``k8s_nodes_hourly_current``)
into ``k8s_expenses_by_day`` and ``k8s_nodes_by_day`` under a build id of its own, between a ``building`` and a
``built`` record of ``k8s_day_builds``; readers see the rows of each day's current build (``k8s_day_current_builds``).
A build never changes rows: a day is built again whenever its hours change (an hour committed, rerun, or arriving
late) or it is reconciled with the bill anew, and cleanup removes the superseded builds' rows as it removes
superseded runs'. What a build summed is recorded as the day's current runs (how many, and a fingerprint of their run
ids and of the day's current reconciliation), read before the rows: a day whose current runs or reconciliation differ
from its build's is stale, so exactness under reruns needs no clock and no lock.

A day reconciled with the bill (``store/reconcile.py``) is built from ``k8s_expenses_reconciled_current``: its list
costs from the view's ``*_list`` columns, the reconciled ones into the ``*_reconciled`` columns. A day never
reconciled is built from ``k8s_expenses_current``, its reconciled costs its list ones.

Days are built once they are over and again whenever their hours change: after their hours commit
(``rebuild_committed``, the pipeline's hook), by the scheduler's tick for any day still stale (``sweep``), and over
stored history by ``kubecost-worker rollup-days`` (``build_days``). The day still running is not built: it would be
built again after each of its hours, and no reader takes a day from the daily tier before it is sealed.

A day is **sealed** before its hours expire (``cleanup.expire_hours``: ``KCW_RETENTION_DAYS``, ``seal_days``): its
build is made current first, then a ``sealed`` record names that build for good, and only then are its hours
deleted. A sealed day is final: no build replaces it, and readers take it from its daily rows (``sealed_days``).
Expiring hours can so never lose a day: an hour is deleted only once its day is sealed.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import structlog

from ..errors import WorkerError
from ..hours import DAY, HOUR, day_of, utc
from . import schema
from .client import classified, query
from .ledger import RunRecord, RunStatus

log = structlog.get_logger(__name__)

BUILDS = "k8s_day_builds"
EXPENSES_BY_DAY, NODES_BY_DAY = "k8s_expenses_by_day", "k8s_nodes_by_day"
NAMESPACE_BY_DAY = "k8s_expenses_namespace_by_day"  # filled from EXPENSES_BY_DAY by its materialized view
# The tables whose rows belong to a build (cleanup removes them with it): those a build writes and their rollups.
BUILD_TABLES = tuple(t for t in schema.tables() if t != BUILDS and any(c.name == "build_id" for c in schema.columns(t)))
BUILD_KEY = "(cloud_account_id, day, build_id)"
EXPIRED_KEY = "(cloud_account_id, toDate(hour))"  # an expired tenant-day's hourly rows, in every hourly table
# Builds the sweep, and the expiry, may each make in one tick (0.2 to 0.4 s each at 2,000 pods): the tick also
# drives the consumer in `run`, and an upgraded store's whole history is `rollup-days`'s work, not a tick's.
BUILDS_PER_TICK = 300

# What a build sums from which hourly view, and by which identity (the columns a daily row is grouped by).
SOURCES = {EXPENSES_BY_DAY: "k8s_expenses_current", NODES_BY_DAY: "k8s_nodes_hourly_current"}
RECONCILED_SOURCE = "k8s_expenses_reconciled_current"  # a reconciled day's rows: the costs reconciled, *_list beside
# The costs reconciliation scales, each with a *_reconciled column in EXPENSES_BY_DAY; the others stay at list.
RECONCILED_COSTS = ("cpu_cost", "ram_cost", "gpu_cost", "pv_cost")
IDENTITY = {
    EXPENSES_BY_DAY: ("cloud_account_id", "cluster_id", "namespace", "workload_kind", "workload_name", "pod", "node",
                      "container", "pod_uid", "service", "labels", "price_source"),
    NODES_BY_DAY: ("cloud_account_id", "cluster_id", "node", "provider_id", "instance_type", "region", "zone", "arch",
                   "spot", "price_source"),
}
# The daily columns not summed from the hourly column of their name.
_BY_DAY_COMMON = {"day": "toDate(h.hour)", "build_id": "{build:UUID}", "first_hour": "min(h.hour)",
                  "last_hour": "max(h.hour)", "hours": "uniqExact(h.hour)"}


def _expense_sums(listed: str) -> dict[str, str]:
    """The daily expense columns not summed from the hourly column of their name, each cost's list value read from
    its hourly column suffixed ``listed`` (``_list`` in the reconciled view) and its reconciled value from the
    column of its name (the list value itself where the day is not reconciled)."""
    made = {
        "total_cost_exact": f"sum(toDecimal128(h.total_cost{listed}, 18))",
        "total_cost_reconciled_exact": "sum(toDecimal128(h.total_cost, 18))",
        "cpu_usage_max_cores": "max(h.cpu_usage_max_cores)",
        "ram_usage_max_bytes": "max(h.ram_usage_max_bytes)",
        "cpu_request_core_hours_without_usage": "sumIf(h.cpu_request_core_hours, h.cpu_usage_core_hours IS NULL)",
        "ram_request_byte_hours_without_usage": "sumIf(h.ram_request_byte_hours, h.ram_usage_byte_hours IS NULL)",
    }
    for resource, usage in (("cpu", "cpu_usage_core_hours"), ("ram", "ram_usage_byte_hours")):
        made[f"{resource}_cost_without_usage"] = f"sumIf(h.{resource}_cost{listed}, h.{usage} IS NULL)"
        made[f"{resource}_cost_without_usage_reconciled"] = f"sumIf(h.{resource}_cost, h.{usage} IS NULL)"
    for cost in RECONCILED_COSTS:
        made[cost] = f"sum(h.{cost}{listed})"
        made[f"{cost}_reconciled"] = f"sum(h.{cost})"
    return made


MADE = {
    EXPENSES_BY_DAY: {**_BY_DAY_COMMON, **_expense_sums("")},
    NODES_BY_DAY: {
        **_BY_DAY_COMMON,
        "cpu_core_hours": "sum(h.cpu_cores * h.running_minutes / 60)",
        "ram_byte_hours": "sum(h.ram_bytes * h.running_minutes / 60)",
        "gpu_hours": "sum(h.gpu_count * h.running_minutes / 60)",
    },
}
# Inserts through a Distributed table (cluster mode) that land before they return: a build's rows are counted right
# after, its 'built' record must not name rows still on their way, and a seal must be found before the hours go.
SYNC_INSERT = {"insert_distributed_sync": 1}
DAY_COLUMN = "$day"  # where a filter names the day, replaced by each side's day expression


class BuildStatus(enum.StrEnum):
    BUILDING = "building"    # its rows are being inserted: invisible
    BUILT = "built"          # its rows are whole: the latest built build of a day is the one readers see
    SEALED = "sealed"        # names the build a day keeps for good, written before the day's hours expire
    COLLECTED = "collected"  # cleanup removed the rows of this superseded or abandoned build


@dataclass(frozen=True)
class DayState:
    """A tenant-day's current runs beside its current build (``day_states``)."""

    hours: int  # current runs of the day's hours
    fingerprint: int  # of their run ids, and of the day's current reconciliation with the bill
    build_id: uuid.UUID | None  # the current build, None without one
    build_hours: int
    build_fingerprint: int
    rows_written: int
    total_cost: float
    sealed: bool
    reconciled: bool = False  # the day has a reconciliation with the bill: built from the reconciled view

    @property
    def is_current(self) -> bool:
        """The current build summed the day's current runs and reconciliation (a day without runs needs none)."""
        return (self.build_hours, self.build_fingerprint) == (self.hours, self.fingerprint)


@dataclass(frozen=True)
class SealedDay:
    """A sealed day as readers take it: its start (unix seconds), its build and that build's rows."""

    day: int
    build_id: uuid.UUID
    rows_written: int


@dataclass
class Builds:
    """What a run of builds did."""

    built: int = 0
    up_to_date: int = 0  # skipped: their build already summed their current runs
    sealed: int = 0  # skipped: final
    failed: int = 0
    seconds: float = 0.0


def build_sql(table: str, reconciled: bool = False) -> str:
    """The INSERT ... SELECT of a build into ``table``: one tenant-day of its hourly source, grouped by identity;
    ``reconciled``: the expenses of a day reconciled with the bill, from their reconciled view."""
    identity = IDENTITY[table]
    source, made = ((RECONCILED_SOURCE, {**_BY_DAY_COMMON, **_expense_sums("_list")})
                    if reconciled and table == EXPENSES_BY_DAY else (SOURCES[table], MADE[table]))
    columns = schema.stored_columns(table)
    select = [f"h.{c}" if c in identity else made.get(c, f"sum(h.{c})") for c in columns]
    return (f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(select)} FROM {source} AS h "
            "WHERE h.cloud_account_id = {tenant:String} AND h.hour >= {start:DateTime('UTC')} "
            f"AND h.hour < {{end:DateTime('UTC')}} GROUP BY {', '.join(f'h.{c}' for c in identity)}, toDate(h.hour)")


def build_day(client: Any, tenant: str, day: int) -> DayState | None:
    """Build one tenant-day from its current hourly rows; its state after, None when it is sealed (final). The
    current runs and reconciliation are read before the rows: a run committed or a reconciliation made meanwhile
    leaves the build stale, never wrong."""
    before = day_states(client, [(tenant, day)]).get((tenant, day))
    if before is not None and before.sealed:
        return None
    runs = (before.hours, before.fingerprint) if before else (0, 0)
    reconciled = before is not None and before.reconciled
    build_id = uuid.uuid4()
    _record(client, tenant, day, build_id, BuildStatus.BUILDING, runs)
    params = {"tenant": tenant, "start": utc(day), "end": utc(day + DAY), "build": build_id}
    with classified(f"building {tenant}'s day {utc(day).date()}"):
        for table in SOURCES:
            client.command(build_sql(table, reconciled), parameters=params, settings=SYNC_INSERT)
        (rows, cost), = query(client, f"SELECT count(), toFloat64(sum(total_cost_exact)) FROM {EXPENSES_BY_DAY} "
                                      "WHERE cloud_account_id = {tenant:String} "
                                      "AND day = toDate({start:DateTime('UTC')}) AND build_id = {build:UUID}", params)
    _record(client, tenant, day, build_id, BuildStatus.BUILT, runs, int(rows), float(cost))
    return DayState(*runs, build_id, *runs, int(rows), float(cost), False, reconciled)


def build_days(client: Any, days: Iterable[tuple[str, int]], resume: bool = False, limit: int | None = None,
               progress: Any = None) -> Builds:
    """Build each of ``days`` (tenant, day start), oldest first; with ``resume`` only those whose build does not
    sum their current runs. ``limit``: at most that many builds. A day that fails to build is logged and counted,
    and the others go on: its hours stay, and a later build makes it."""
    done, started = Builds(), time.perf_counter()
    wanted = sorted(set(days), key=lambda d: (d[1], d[0]))
    states = day_states(client, wanted) if wanted else {}
    for tenant, day in wanted:
        state = states.get((tenant, day))
        if state is not None and state.sealed:
            done.sealed += 1
        elif resume and state is not None and state.is_current:
            done.up_to_date += 1
        elif limit is not None and done.built + done.failed >= limit:
            break
        else:
            try:
                build_day(client, tenant, day)
                done.built += 1
            except WorkerError as exc:
                done.failed += 1
                log.error("a day build failed; its hours stay until a build makes it", tenant=tenant,
                          day=str(utc(day).date()), error=str(exc))
        if progress is not None:
            progress(done)
    done.seconds = time.perf_counter() - started
    return done


def rebuild_committed(client: Any, ended: Iterable[Any], now: float | None = None) -> None:
    """The pipeline's hook after a batch's write: rebuild the days of the runs that committed (``ended``: the batch's
    RunRecords and errors) once they are over (``now``: the time, default the clock's): the day still running is
    built when it is over, not after each of its hours. Never raises: the hours are committed whatever happens here,
    and a day left stale is rebuilt by the scheduler's sweep."""
    rebuild(client, {(r.cloud_account_id, day_of(r.hour)) for r in ended
                     if isinstance(r, RunRecord) and r.status == RunStatus.SUCCEEDED}, now)


def rebuild(client: Any, days: Iterable[tuple[str, int]], now: float | None = None) -> None:
    """Build ``days`` (tenant, day start) again whose hours or reconciliation just changed, once they are over
    (``now``: the time, default the clock's). Never raises: what changed is committed whatever happens here, and a
    day left stale is rebuilt by the scheduler's sweep."""
    today = day_of(time.time() if now is None else now)
    days = {key for key in days if key[1] < today}
    if not days:
        return
    try:
        build_days(client, days)
    except Exception as exc:  # the store went away between the change and the build: the sweep repairs it
        log.warning("the changed days were not rebuilt; the scheduler's sweep will", error=str(exc),
                    days=len(days))


def day_states(client: Any, days: list[tuple[str, int]] | None = None, tenants: Iterable[str] = (),
               start: int | None = None, end: int | None = None,
               since: dt.datetime | None = None) -> dict[tuple[str, int], DayState]:
    """(tenant, day start) -> its state, for the days with current runs or a current build among ``days``, else of
    ``tenants`` (all: none named) and days in ``[start, end)``, else whose ledger had a commit, or that were
    reconciled, ``since`` then (the server's clock)."""
    where, params = _days_filter(days, tenants, start, end, since)
    rows = query(client, schema.as_installed(
                 f"""
                 SELECT cloud_account_id, toUnixTimestamp(toDateTime(day, 'UTC')), r.hours,
                        r.fingerprint + ifNull(cityHash64(c.reconcile_id), 0), b.build_id, b.hours,
                        b.runs_fingerprint, b.rows_written, b.total_cost, b.sealed, c.reconcile_id IS NOT NULL
                 FROM (SELECT cloud_account_id, toDate(hour) AS day, toUInt64(count()) AS hours,
                              sum(cityHash64(hour, run_id)) AS fingerprint
                       FROM k8s_expense_current_runs WHERE {where.replace(DAY_COLUMN, 'toDate(hour)')}
                       GROUP BY cloud_account_id, day) AS r
                 FULL JOIN (SELECT cloud_account_id, day, build_id, hours, runs_fingerprint, rows_written,
                                   total_cost, sealed
                            FROM k8s_day_current_builds WHERE {where.replace(DAY_COLUMN, 'day')}) AS b
                     USING (cloud_account_id, day)
                 LEFT JOIN (SELECT cloud_account_id, bill_day AS day, reconcile_id
                            FROM k8s_current_reconciliations WHERE {where.replace(DAY_COLUMN, 'bill_day')}) AS c
                     USING (cloud_account_id, day)
                 SETTINGS join_use_nulls = 1
                 """), params, action="reading the day builds")
    return {(tenant, int(day)): DayState(int(hours or 0), int(fingerprint or 0), build_id, int(build_hours or 0),
                                         int(build_fingerprint or 0), int(rows or 0), float(cost or 0.0),
                                         bool(sealed), bool(reconciled))
            for (tenant, day, hours, fingerprint, build_id, build_hours, build_fingerprint, rows, cost, sealed,
                 reconciled) in rows}


def _days_filter(days, tenants, start, end, since) -> tuple[str, dict[str, Any]]:
    """``day_states``'s filter: SQL naming each side's day as ``DAY_COLUMN``, and its parameters."""
    if days is not None:
        return (f"(cloud_account_id, {DAY_COLUMN}) IN {{days:Array(Tuple(String, Date))}}",
                {"days": [(tenant, utc(day).date()) for tenant, day in days]})
    terms, params = [], {}
    if tenants:
        terms.append("cloud_account_id IN {tenants:Array(String)}")
        params["tenants"] = list(tenants)
    if start is not None:
        terms.append(f"{DAY_COLUMN} >= toDate({{start:DateTime('UTC')}})")
        params["start"] = utc(max(start, 0))
    if end is not None:
        terms.append(f"{DAY_COLUMN} < toDate({{end:DateTime('UTC')}})")
        params["end"] = utc(max(end, 0))
    if since is not None:
        terms.append(f"(cloud_account_id, {DAY_COLUMN}) IN (SELECT cloud_account_id, toDate(hour) "
                     "FROM k8s_expense_runs WHERE recorded_at >= {since:DateTime64(6, 'UTC')} "
                     "AND status = 'succeeded' UNION ALL SELECT cloud_account_id, bill_day "
                     "FROM k8s_reconciliations WHERE computed_at >= {since:DateTime64(6, 'UTC')})")
        params["since"] = since
    return " AND ".join(terms) or "1", params


def stale_days(states: dict[tuple[str, int], DayState]) -> list[tuple[str, int]]:
    """The days whose current build does not sum their current runs (none built, or hours changed since), but
    sealed days (final)."""
    return [key for key, state in states.items() if not state.sealed and state.hours and not state.is_current]


def sweep(client: Any, since: dt.datetime | None, today: int, limit: int = BUILDS_PER_TICK) -> Builds:
    """The scheduler's repair: build every stale day before ``today`` (of the days committed to since ``since``, the
    server's clock; None: every day), at most ``limit``."""
    return build_days(client, [key for key in stale_days(day_states(client, since=since)) if key[1] < today],
                      limit=limit)


def seal_days(client: Any, days: list[tuple[str, int]], limit: int = BUILDS_PER_TICK) -> tuple[set, Builds]:
    """Seal each of ``days`` whose hours may expire: its build made current first (at most ``limit`` builds), then a
    ``sealed`` record naming that build. Returns the days sealed (now or before) or without any current run (nothing
    to keep: their hours may go too), and the builds made. A day whose build failed, waits for the limit, or raced a
    commit stays unsealed: its hours stay until a later call seals it."""
    states = day_states(client, days)
    builds = build_days(client, stale_days(states), limit=limit)
    if builds.built:
        states = day_states(client, days)
    done, sealing = set(), []
    for key in days:
        state = states.get(key)
        if state is None or state.sealed:
            done.add(key)
        elif state.build_id is not None and (state.is_current or not state.hours):
            sealing.append((key, state))
            done.add(key)
    if sealing:
        _records(client, [[tenant, utc(day).date(), s.build_id, str(BuildStatus.SEALED), s.build_hours,
                           s.build_fingerprint, s.rows_written, s.total_cost] for (tenant, day), s in sealing],
                 "sealing days")
        log.info("sealed days before their hours expire", days=len(sealing))
    return done, builds


def sealed_days(query_rows: Callable[[str, dict], list[tuple]], tenant: str, start: int,
                end: int) -> list[SealedDay]:
    """The sealed days wholly inside the hours of ``[start, end)`` (as the read API selects hours: from the hour
    holding ``start`` to the last starting before ``end``), by day, asked through ``query_rows(sql, parameters)``:
    what readers take from the daily tier. A day partly inside is left out: the daily rows cannot tell part of a
    day."""
    start, end = max(start, 0), min(end, 2**32 - 1)
    first = -(-(start - start % HOUR) // DAY) * DAY
    last = end - 1 - (end - 1) % HOUR - (DAY - HOUR)  # a day starting by then has its last hour in the window
    if last < first:
        return []
    rows = query_rows("SELECT toUnixTimestamp(toDateTime(day, 'UTC')), build_id, rows_written "
                      "FROM k8s_day_current_builds WHERE cloud_account_id = {tenant:String} "
                      "AND day >= toDate({first:DateTime('UTC')}) AND day <= toDate({last:DateTime('UTC')}) "
                      "AND sealed ORDER BY day", {"tenant": tenant, "first": utc(first), "last": utc(last)})
    return [SealedDay(int(day), build_id, int(rows)) for day, build_id, rows in rows]


def obsolete_builds(client: Any, since: dt.datetime | None, stale_before: dt.datetime) -> list[tuple]:
    """(tenant, day, build id, partition) of the builds cleanup removes: neither current nor collected yet, in days
    whose builds changed since ``since`` (None: every day); a build still 'building' only once its first record is
    older than ``stale_before`` (it died; both the server's clock)."""
    changed = ("AND (cloud_account_id, day) IN (SELECT cloud_account_id, day FROM k8s_day_builds "
               "WHERE recorded_at >= {since:DateTime64(6, 'UTC')})") if since else ""
    return query(client,
                 f"""
                 SELECT b.cloud_account_id, b.day, b.build_id, toYYYYMM(b.day)
                 FROM (SELECT cloud_account_id, day, build_id, argMax(status, recorded_at) AS last_status,
                              min(recorded_at) AS first_recorded
                       FROM k8s_day_builds WHERE status != 'sealed' {changed}
                       GROUP BY cloud_account_id, day, build_id) AS b
                 LEFT JOIN (SELECT cloud_account_id, day, build_id FROM k8s_day_current_builds WHERE 1 {changed})
                     AS current ON b.cloud_account_id = current.cloud_account_id AND b.day = current.day
                 WHERE b.last_status != 'collected' AND b.build_id != current.build_id
                   AND (b.last_status != 'building' OR b.first_recorded < {{stale:DateTime64(6, 'UTC')}})
                 ORDER BY b.cloud_account_id, b.day
                 """, {"stale": stale_before, **({"since": since} if since else {})},
                 action="finding superseded day builds")


def record_collected(client: Any, builds: list[tuple]) -> None:
    """Cleanup removed the rows of ``builds`` (tenant, day, build id): recorded so that it looks at them no more."""
    _records(client, [[tenant, day, build_id, str(BuildStatus.COLLECTED), 0, 0, 0, 0.0]
                      for tenant, day, build_id in builds], "recording collected builds")


def _record(client: Any, tenant: str, day: int, build_id: uuid.UUID, status: BuildStatus, runs: tuple[int, int],
            rows: int = 0, cost: float = 0.0) -> None:
    _records(client, [[tenant, utc(day).date(), build_id, str(status), *runs, rows, cost]],
             f"recording a day build as {status}")


def _records(client: Any, rows: list[list], action: str) -> None:
    """Records of ``k8s_day_builds``, landed when this returns (``SYNC_INSERT``): a day's hours are deleted right
    after its seal is recorded, and a reader must find the seal by then."""
    with classified(action):
        client.insert(BUILDS, rows, column_names=BUILD_COLUMNS,
                      column_type_names=schema.type_names(BUILDS, BUILD_COLUMNS), settings=SYNC_INSERT)


BUILD_COLUMNS = schema.written_columns(BUILDS)
