"""Cleanup: removing the rows of the runs that can no longer become current (superseded, failed, abandoned), of the
day builds superseded the same way (``days.py``) and the factors of superseded reconciliations with the bill
(``reconcile.py``), which the scheduler runs each tick and ``kubecost-worker gc`` on demand.

A commit deletes nothing (``writer.py``): the runs it supersedes stay underneath, invisible, until
``collect_garbage`` removes them in batches (a delete per table and monthly partition, more when the runs' list
would make a statement too long) and records them ``collected``. Ages are the server's time (``ledger.server_now``).
The same batched deletes remove the hours of expired days (``expire_hours``), each day sealed in the daily tier
first.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Iterator

import structlog
from clickhouse_connect.driver.binding import format_query_value

from ..hours import now, utc
from . import days, ledger, reconcile, schema
from .client import classified, query
from .cluster import local_table
from .ledger import STALE_RUN, RunRecord, RunStatus

log = structlog.get_logger(__name__)

RUN_TABLES = schema.run_tables()  # the tables whose rows cleanup removes with their run
RUN_KEY = "(cloud_account_id, hour, run_id)"  # what names a run's rows in each of them
# The hourly tables an expired day's hours are deleted from: the ledger last, since it lists what is still to expire.
EXPIRED_TABLES = tuple(sorted(schema.retained_tables(), key=lambda table: table == schema.LEDGER))
# The longest delete cleanup sends, in bytes: each names its runs as (tenant, hour, run id) tuples in its text (about
# 95 bytes a run with UUID tenant ids), and ClickHouse refuses a query longer than its max_query_size (262,144 bytes
# by default, code 62); ON CLUSTER also passes the text through Keeper. 2,100 such runs a statement.
MAX_DELETE_BYTES = 200_000
# Cleanup's deletes are queued at once and then awaited together: a lightweight delete is a mutation, applied by
# ClickHouse's background pool, and waiting for each in turn (the default) costs that pool's latency per statement
# (about 2 s each measured in chDB, whatever the partition's size). A queued mutation is durable: a crash before it
# is applied leaves it to run when ClickHouse is back.
QUEUED_DELETE = {"lightweight_deletes_sync": 0, "mutations_sync": 0}
CLEANUP_WAIT_SECONDS = 600.0


@dataclass(frozen=True)
class Collected:
    """What one cleanup removed: runs, the partitions it touched, its time, and the server's time when it read the
    ledger (the next cleanup's ``since`` counts from it: the ledger's records are stamped by that clock)."""

    runs: int
    partitions: int
    seconds: float
    began_at: dt.datetime | None = None
    builds: int = 0  # superseded or abandoned day builds whose rows went too
    reconciliations: int = 0  # superseded reconciliations with the bill whose factors went too


def collect_garbage(client: Any, cluster: str | None, since: dt.datetime | None = None,
                    stale_after: dt.timedelta = STALE_RUN) -> Collected:
    """Remove the rows of every run that can no longer become current, in hours whose ledger changed since
    ``since`` (None: every hour), and record those runs as ``collected``; on a ``cluster``, from its local tables.

    Removed: superseded succeeded runs, failed runs, and runs still 'running' that started more than
    ``stale_after`` ago (their process died; a run that old may not commit, ``RunRecord.commit_by``). Kept: the
    current run of each hour and recent running runs (another consumer may still commit them). Ages are the
    server's time since a run's first record, ``since`` is a time of the server's clock. One lightweight
    delete per table and monthly partition for the runs found, more when their list would make a statement
    longer than ``MAX_DELETE_BYTES``; a crash halfway is repaired by the next call (the deletes are idempotent,
    the runs not yet 'collected')."""
    started = time.perf_counter()
    began_at = ledger.server_now(client)
    obsolete = [(tenant, int(hour), run_id, partition)
                for tenant, hour, run_id, partition in obsolete_runs(client, since, began_at - stale_after)]

    def collected(batch: list[tuple]) -> None:
        at_collection = now()
        ledger.record(client, *(RunRecord(tenant, hour, run_id, RunStatus.COLLECTED, "gc", at_collection,
                                          finished_at=at_collection) for tenant, hour, run_id in batch))

    partitions = remove_listed(client, cluster, obsolete, RUN_TABLES, RUN_KEY, collected, "obsolete runs")
    builds = days.obsolete_builds(client, since, began_at - stale_after)
    partitions += remove_listed(client, cluster, builds, days.BUILD_TABLES, days.BUILD_KEY,
                                lambda batch: days.record_collected(client, batch), "superseded day builds")
    # the ledger keeps no record of these: a pass looks again at the days reconciled since the last one
    superseded = reconcile.superseded_reconciliations(client, since)
    partitions += remove_listed(client, cluster, superseded, (reconcile.FACTORS,), reconcile.FACTOR_KEY,
                                lambda batch: None, "superseded reconciliations")
    if obsolete or builds or superseded:
        _await_deletes(client, cluster, (*RUN_TABLES, *days.BUILD_TABLES, reconcile.FACTORS))
    done = Collected(len(obsolete), partitions, time.perf_counter() - started, began_at, len(builds),
                     len(superseded))
    if obsolete or builds or superseded:
        log.info("removed the rows of obsolete runs, builds and reconciliations", runs=done.runs,
                 builds=done.builds, reconciliations=done.reconciliations, partitions=done.partitions,
                 seconds=round(done.seconds, 3))
    return done


@dataclass(frozen=True)
class Expired:
    """What one expiry did: tenant-days whose hours were deleted, days kept past the cutoff (not sealed yet), the
    builds it made first, and its time."""

    days: int
    waiting: int
    builds: int
    seconds: float


def expire_hours(client: Any, cluster: str | None, first_kept_day: int,
                 limit: int = days.BUILDS_PER_TICK) -> Expired:
    """Delete the hours of the UTC days before ``first_kept_day`` (``KCW_RETENTION_DAYS``) from every hourly table,
    the ledger last, once each day is sealed (``days.seal_days``: built from its current hours first): an hour goes
    only once its day is kept for good. A day that cannot be sealed yet keeps its hours until a later expiry. The
    deletes are mutations that rewrite the parts, so the bytes go now, as a TTL's would; they are idempotent, and a
    crash halfway is finished by the next expiry (the ledger, which lists the days to expire, goes last)."""
    started = time.perf_counter()
    due = [(tenant, int(day)) for tenant, day in query(
        client, "SELECT cloud_account_id, toUnixTimestamp(toDateTime(toDate(hour), 'UTC')) AS day "
                "FROM k8s_expense_runs WHERE hour < {cutoff:DateTime('UTC')} GROUP BY cloud_account_id, day",
        {"cutoff": utc(first_kept_day)}, action="finding the days whose hours expire")]
    if not due:
        return Expired(0, 0, 0, time.perf_counter() - started)
    ready, builds = days.seal_days(client, due, limit)
    listed = [(tenant, utc(day).date(), int(utc(day).strftime("%Y%m"))) for tenant, day in due
              if (tenant, day) in ready]
    remove_listed(client, cluster, listed, EXPIRED_TABLES, days.EXPIRED_KEY, lambda batch: None,
                  "expired tenant-days", rewrite=True)
    if listed:
        _await_deletes(client, cluster, EXPIRED_TABLES)
    done = Expired(len(listed), len(due) - len(listed), builds.built, time.perf_counter() - started)
    log.info("deleted the hours of expired days", days=done.days, waiting=done.waiting, builds=done.builds,
             seconds=round(done.seconds, 3))
    return done


def remove_listed(client: Any, cluster: str | None, found: list[tuple], tables: tuple[str, ...], key: str,
                  record: Any, what: str, rewrite: bool = False) -> int:
    """Delete from ``tables`` the rows named by ``found`` (each the values of ``key`` and the monthly partition),
    queued: a delete per table and partition, more when the list would make a statement too long; ``record(batch)``
    after each batch's deletes. ``rewrite``: mutations that rewrite the parts (their bytes go now) instead of
    lightweight deletes. Returns the partitions touched."""
    by_partition: dict[int, list[tuple]] = {}
    for *named, partition in found:
        by_partition.setdefault(int(partition), []).append(tuple(named))
    for partition, listed_rows in sorted(by_partition.items()):
        for batch, listed in delete_batches(listed_rows, partition, cluster, tables=tables, key=key, rewrite=rewrite):
            with classified(f"removing the rows of {len(batch)} {what}"):
                for table in tables:
                    client.command(delete_listed(table, partition, cluster, listed, key, rewrite),
                                   settings=QUEUED_DELETE)
            record(batch)
    return len(by_partition)


def obsolete_runs(client: Any, since: dt.datetime | None, stale_before: dt.datetime) -> list[tuple]:
    """(tenant, hour, run id, partition) of the runs ``collect_garbage`` removes: a run still 'running' is
    taken for dead when its first record is older than ``stale_before`` (both the server's clock; ``started_at``
    is the worker's and may be minutes off)."""
    changed = ("AND (cloud_account_id, hour) IN (SELECT cloud_account_id, hour FROM k8s_expense_runs "
               "WHERE recorded_at >= {since:DateTime64(6, 'UTC')})") if since else ""
    return query(client,
                 f"""
                 SELECT r.cloud_account_id, toUnixTimestamp(r.hour), r.run_id, toYYYYMM(r.hour)
                 FROM (
                     SELECT cloud_account_id, hour, run_id, argMax(status, recorded_at) AS last_status,
                            min(recorded_at) AS first_recorded
                     FROM k8s_expense_runs
                     WHERE status NOT IN ('queued', 'refused') {changed}
                     GROUP BY cloud_account_id, hour, run_id
                 ) AS r
                 LEFT JOIN (
                     SELECT cloud_account_id, hour, run_id FROM k8s_expense_current_runs WHERE 1 {changed}
                 ) AS current ON r.cloud_account_id = current.cloud_account_id AND r.hour = current.hour
                 WHERE r.last_status != 'collected' AND r.run_id != current.run_id
                   AND (r.last_status != 'running' OR r.first_recorded < {{stale:DateTime64(6, 'UTC')}})
                 ORDER BY r.cloud_account_id, r.hour
                 """, {"stale": stale_before, **({"since": since} if since else {})})


def _await_deletes(client: Any, cluster: str | None, tables: tuple[str, ...]) -> None:
    """Until ClickHouse has applied every queued delete of ``tables`` (on a cluster each server applies its own, and
    ``ON CLUSTER`` returns once they are queued everywhere: nothing to wait for here)."""
    if cluster:
        return
    deadline = time.monotonic() + CLEANUP_WAIT_SECONDS
    while True:
        (pending, failure), = query(
            client,
            "SELECT countIf(NOT is_done), anyIf(latest_fail_reason, NOT is_done AND latest_fail_reason != '') "
            "FROM system.mutations WHERE database = currentDatabase() AND table IN {tables:Array(String)}",
            {"tables": list(tables)})
        if not pending:
            return
        if failure or time.monotonic() > deadline:
            log.warning("cleanup's deletes not applied yet; ClickHouse goes on with them", pending=pending,
                        failure=str(failure)[:300])
            return
        time.sleep(0.1)


def delete_runs(table: str, partition: int, cluster: str | None, listed: str = "%(runs)s") -> str:
    """Cleanup's statement: a lightweight delete of the runs ``listed`` (the text of a list of tuples of tenant,
    hour, run id, ``delete_batches``) in one monthly partition; on a cluster, of the local tables ``ON CLUSTER``."""
    return delete_listed(table, partition, cluster, listed, RUN_KEY)


def delete_listed(table: str, partition: int, cluster: str | None, listed: str, key: str,
                  rewrite: bool = False) -> str:
    """A delete of the rows whose ``key`` is in ``listed`` in one monthly partition: lightweight (the rows masked,
    their bytes gone at the part's next merge), or with ``rewrite`` a mutation rewriting the parts. The list is
    rendered client-side, so the statement is complete text, as ``ON CLUSTER`` needs (each server runs the text it
    is sent)."""
    if rewrite:
        return f"ALTER TABLE {local_table(table, cluster)} DELETE IN PARTITION {int(partition)} WHERE {key} IN {listed}"
    return f"DELETE FROM {local_table(table, cluster)} IN PARTITION {int(partition)} WHERE {key} IN {listed}"


def delete_batches(runs: list[tuple], partition: int, cluster: str | None, limit: int = MAX_DELETE_BYTES,
                   tables: tuple[str, ...] = RUN_TABLES, key: str = RUN_KEY,
                   rewrite: bool = False) -> Iterator[tuple[list[tuple], str]]:
    """The runs (tenant, hour, run id; or whatever ``key`` names) of one partition in consecutive batches, each with
    the text of its list: as many as keep every table's delete (``delete_listed``) within ``limit`` bytes."""
    room = limit - max(len(delete_listed(table, partition, cluster, "()", key, rewrite).encode()) for table in tables)
    batch: list[tuple] = []
    texts: list[str] = []
    size = 0
    for run in runs:
        text = format_query_value(run)
        grown = size + len(text.encode()) + (2 if texts else 0)  # ", " between tuples
        if texts and grown > room:
            yield batch, f"({', '.join(texts)})"
            batch, texts, grown = [], [], len(text.encode())
        if grown > room:
            raise ValueError(f"a run's tuple alone is longer than {limit} bytes: {text[:80]}")
        batch.append(run)
        texts.append(text)
        size = grown
    if texts:
        yield batch, f"({', '.join(texts)})"
