"""Cleanup: removing the rows of the runs that can no longer become current (superseded, failed, abandoned), which
the scheduler runs each tick and ``kubecost-worker gc`` on demand.

A commit deletes nothing (``writer.py``): the runs it supersedes stay underneath, invisible, until
``collect_garbage`` removes them in batches (a delete per table and monthly partition, more when the runs' list
would make a statement too long) and records them ``collected``. Ages are the server's time (``ledger.server_now``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Iterator

import structlog
from clickhouse_connect.driver.binding import format_query_value

from ..hours import now
from . import ledger, schema
from .client import classified, query
from .cluster import local_table
from .ledger import STALE_RUN, RunRecord, RunStatus

log = structlog.get_logger(__name__)

RUN_TABLES = schema.run_tables()  # the tables whose rows cleanup removes with their run
# The longest delete cleanup sends, in bytes: each names its runs as (tenant, hour, run id) tuples in its text (about
# 95 bytes a run with UUID tenant ids), and ClickHouse refuses a query longer than its max_query_size (262,144 bytes
# by default, code 62); ON CLUSTER also passes the text through Keeper. 2,100 such runs a statement.
MAX_DELETE_BYTES = 200_000
# Cleanup's deletes are queued at once and then awaited together: a lightweight delete is a mutation, applied by
# ClickHouse's background pool, and waiting for each in turn (the default) costs that pool's latency per statement
# (about 2 s each measured in chDB, whatever the partition's size). A queued mutation is durable: a crash before it
# is applied leaves it to run when ClickHouse is back.
QUEUED_DELETE = {"lightweight_deletes_sync": 0}
CLEANUP_WAIT_SECONDS = 600.0


@dataclass(frozen=True)
class Collected:
    """What one cleanup removed: runs, the partitions it touched, its time, and the server's time when it read the
    ledger (the next cleanup's ``since`` counts from it: the ledger's records are stamped by that clock)."""

    runs: int
    partitions: int
    seconds: float
    began_at: dt.datetime | None = None


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
    obsolete = obsolete_runs(client, since, began_at - stale_after)
    if not obsolete:
        return Collected(0, 0, time.perf_counter() - started, began_at)
    by_partition: dict[int, list[tuple]] = {}
    for tenant, hour, run_id, partition in obsolete:
        by_partition.setdefault(int(partition), []).append((tenant, int(hour), run_id))
    for partition, runs in sorted(by_partition.items()):
        for batch, listed in delete_batches(runs, partition, cluster):
            with classified(f"removing the rows of {len(batch)} obsolete runs"):
                for table in RUN_TABLES:
                    client.command(delete_runs(table, partition, cluster, listed), settings=QUEUED_DELETE)
            at_collection = now()
            ledger.record(client, *(RunRecord(tenant, hour, run_id, RunStatus.COLLECTED, "gc", at_collection,
                                              finished_at=at_collection) for tenant, hour, run_id in batch))
    _await_deletes(client, cluster)
    done = Collected(len(obsolete), len(by_partition), time.perf_counter() - started, began_at)
    log.info("removed the rows of obsolete runs", runs=done.runs, partitions=done.partitions,
             seconds=round(done.seconds, 3))
    return done


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


def _await_deletes(client: Any, cluster: str | None) -> None:
    """Until ClickHouse has applied every queued delete of the run tables (on a cluster each server applies its
    own, and ``ON CLUSTER`` returns once they are queued everywhere: nothing to wait for here)."""
    if cluster:
        return
    deadline = time.monotonic() + CLEANUP_WAIT_SECONDS
    while True:
        (pending, failure), = query(
            client,
            "SELECT countIf(NOT is_done), anyIf(latest_fail_reason, NOT is_done AND latest_fail_reason != '') "
            "FROM system.mutations WHERE database = currentDatabase() AND table IN {tables:Array(String)}",
            {"tables": list(RUN_TABLES)})
        if not pending:
            return
        if failure or time.monotonic() > deadline:
            log.warning("cleanup's deletes not applied yet; ClickHouse goes on with them", pending=pending,
                        failure=str(failure)[:300])
            return
        time.sleep(0.1)


def delete_runs(table: str, partition: int, cluster: str | None, listed: str = "%(runs)s") -> str:
    """Cleanup's statement: a lightweight delete of the runs ``listed`` (the text of a list of tuples of tenant,
    hour, run id, ``delete_batches``) in one monthly partition; on a cluster, of the local tables ``ON CLUSTER``.
    The runs are rendered client-side, so the statement is complete text, as ``ON CLUSTER`` needs (each server runs
    the text it is sent)."""
    return (f"DELETE FROM {local_table(table, cluster)} IN PARTITION {int(partition)} "
            f"WHERE (cloud_account_id, hour, run_id) IN {listed}")


def delete_batches(runs: list[tuple], partition: int, cluster: str | None,
                   limit: int = MAX_DELETE_BYTES) -> Iterator[tuple[list[tuple], str]]:
    """The runs (tenant, hour, run id) of one partition in consecutive batches, each with the text of its list:
    as many runs as keep every table's delete (``delete_runs``) within ``limit`` bytes."""
    room = limit - max(len(delete_runs(table, partition, cluster, "()").encode()) for table in RUN_TABLES)
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
