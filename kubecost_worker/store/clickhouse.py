"""Sink: writing a tenant-hour's rows into ClickHouse so that reruns replace them exactly.

One code path, clickhouse-connect, for the embedded chDB (``chdb:///path``) and a ClickHouse server
(``http(s)://...``). The write protocol of one run (the rules are in ``ledger.py``):

1. ledger row ``running`` (run id, start time);
2. insert the expense rows, the node rows and the metric samples, tagged with the run id (invisible: no view
   selects them);
3. ledger row ``succeeded``: from this single-row insert on, ``k8s_expenses_current`` shows the new run's
   rows instead of the previous run's; a reader sees the old hour or the new one, never a mix.

Nothing is deleted on the way: the rows of the runs a commit supersedes stay underneath, invisible, until
``collect_garbage`` removes them in batches (a delete per table and monthly partition, more when the runs' list
would make a statement too long), which the scheduler runs each tick and ``kubecost-worker gc`` on demand. A rerun
costs what a first run costs, however large the tables. The ledger's order is the server's clock: ClickHouse stamps
each record (``recorded_at DEFAULT now64(6)``, migration 0015), and every age of a record is measured against the
server's time. A crash anywhere leaves at worst invisible rows of an unfinished run, collected once it is stale.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import clickhouse_connect
import structlog
from clickhouse_connect.driver.binding import format_query_value
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from ..errors import TerminalError, TransientError
from ..model.rows import ExpenseRow, HourResult, MetricSample, NodeRow
from .ledger import STALE_RUN, CurrentRun, RunRecord, RunStatus
from ..hours import now, utc
from . import schema
from .cluster import local_table

log = structlog.get_logger(__name__)

# What the sink sends to each table: its declared columns (store/schema/) but those the server computes (total_cost
# on read, the ledger's recorded_at where it is stored: one clock orders the ledger, whatever the workers' clocks).
# A row's fields are those of its table without the run's id and insertion time, which the sink adds.
RUN_BOOKKEEPING = ["run_id", "inserted_at"]
ROW_FIELDS = [c for c in schema.written_columns("k8s_expenses") if c not in RUN_BOOKKEEPING]  # ExpenseRow's, in order
EXPENSE_COLUMNS = [*ROW_FIELDS, *RUN_BOOKKEEPING]
NODE_FIELDS = [c for c in schema.written_columns("k8s_nodes_hourly") if c not in RUN_BOOKKEEPING]  # NodeRow's
NODE_COLUMNS = [*NODE_FIELDS, *RUN_BOOKKEEPING]
METRIC_COLUMNS = schema.written_columns("kubecost_metrics_hourly")
LEDGER_COLUMNS = schema.written_columns(schema.LEDGER)
RUN_TABLES = schema.run_tables()  # the tables whose rows cleanup removes with their run
# ClickHouse error codes that pass: the chDB path locked by another process (76), too many parts / memory
# (252, 241), timeouts (159, 209), a replica or the keeper away (242, 999), the server shutting down (210), a full
# disk (243 NOT_ENOUGH_SPACE: merges, TTLs and the operator free it), the server overloaded (202
# TOO_MANY_SIMULTANEOUS_QUERIES, 203 NO_FREE_CONNECTION, 439 CANNOT_SCHEDULE_TASK) or its shards away (279
# ALL_CONNECTION_TRIES_FAILED). Every other code is terminal: above all a query of ours rejected (62 SYNTAX_ERROR,
# also "Max query size exceeded"; 47, 53, 60, 168...). The read API answers the first kind 503, the second 500.
TRANSIENT_CODES = {76, 159, 202, 203, 209, 210, 241, 242, 243, 252, 279, 439, 999}
# Rows per block of a streamed result, and the bytes ClickHouse aims a block at: what the reader holds at once
# (a text of a 2,000-pod tenant's metric-hour is about 1.3 kB).
STREAM_BLOCK = {"max_block_size": 256, "preferred_block_size_bytes": 256 * 1024}
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


@contextlib.contextmanager
def classified(action: str) -> Iterator[None]:
    """Turn ClickHouse failures into ``TransientError`` / ``TerminalError``, once, here."""
    try:
        yield
    except OperationalError as exc:
        raise TransientError(f"ClickHouse unavailable while {action}: {exc}") from exc
    except DatabaseError as exc:
        code = getattr(exc, "code", None) or _code_in(str(exc))
        kind = TransientError if code in TRANSIENT_CODES or _chdb_path_busy(str(exc)) else TerminalError
        raise kind(f"ClickHouse error while {action}: {str(exc).strip()[:500]}") from exc
    except ClickHouseError as exc:
        raise TransientError(f"ClickHouse error while {action}: {str(exc).strip()[:500]}") from exc
    except (ConnectionError, TimeoutError) as exc:
        raise TransientError(f"ClickHouse unavailable while {action}: {exc}") from exc


def _chdb_path_busy(message: str) -> bool:
    """chDB reports a path locked by another process (code 76 on stderr) as a failure to open the engine."""
    return "Unable to open the chdb engine" in message and "already initialized with path" not in message


def _code_in(message: str) -> int | None:
    marker = "Code: "
    at = message.find(marker)
    if at < 0:
        return None
    digits = "".join(c for c in message[at + len(marker): at + len(marker) + 6] if c.isdigit())
    return int(digits) if digits else None


def connect(url: str) -> Any:
    """A clickhouse-connect client for ``chdb:///abs/path`` or ``http(s)://user:pass@host:port/db``."""
    with classified("connecting"):
        if url.startswith("chdb:"):
            os.makedirs(url.removeprefix("chdb://"), exist_ok=True)
        return clickhouse_connect.get_client(dsn=url)


@dataclass(frozen=True)
class Collected:
    """What one cleanup removed: runs, the partitions it touched, its time, and the server's time when it read the
    ledger (the next cleanup's ``since`` counts from it: the ledger's records are stamped by that clock)."""

    runs: int
    partitions: int
    seconds: float
    began_at: dt.datetime | None = None


class ClickHouseSink:
    def __init__(self, client: Any, cluster: str | None = None, url: str | None = None):
        self.client = client
        self.cluster = cluster  # KCW_CLICKHOUSE_CLUSTER: deletes go to the local tables ON CLUSTER
        self.url = url  # where the client was opened, when known: ReadClients opens more there

    @classmethod
    def open(cls, url: str, cluster: str | None = None) -> "ClickHouseSink":
        return cls(connect(url), cluster, url)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    # -- the ledger --------------------------------------------------------------------------------------------

    def record(self, *runs: RunRecord) -> None:
        if not runs:
            return
        with classified(f"recording run {runs[0].run_id} as {runs[0].status}"):
            self.client.insert("k8s_expense_runs", [
                [r.cloud_account_id, utc(r.hour), r.run_id, str(r.status), r.reason, r.started_at, r.finished_at,
                 r.rows_written, r.total_cost, r.samples_seen, r.coverage, r.error[:2000],
                 list(r.unpriced_nodes), r.thanos_queries, r.thanos_bytes, r.thanos_samples] for r in runs],
                column_names=LEDGER_COLUMNS)

    def server_now(self) -> dt.datetime:
        """The ClickHouse server's time: the clock the ledger's records are stamped by, so the one their ages are
        measured against (a worker's own clock may be minutes off)."""
        (at,), = self.query("SELECT now64(6, 'UTC')")
        return _aware(at)

    def current_run(self, tenant: str, hour: int) -> CurrentRun | None:
        """The run readers see for the tenant-hour, as ``k8s_expense_current_runs`` defines it; None: no run yet."""
        rows = self.query("SELECT run_id, coverage, rows_written FROM k8s_expense_current_run_records "
                          "WHERE cloud_account_id = {tenant:String} AND hour = {hour:DateTime('UTC')}",
                          {"tenant": tenant, "hour": utc(hour)})
        return CurrentRun(rows[0][0], int(rows[0][1]), int(rows[0][2])) if rows else None

    # -- one tenant-hour ---------------------------------------------------------------------------------------

    def write_hour(self, run: RunRecord, result: HourResult, coverage: int = 0) -> RunRecord:
        """Insert the rows of a run (expenses, nodes, metric samples) and commit it with its ``coverage``
        and unpriced nodes, unless its deadline (``run.commit_by``, the ledger's rule) has passed meanwhile;
        returns the succeeded record. Older runs stay underneath, invisible, until ``collect_garbage``."""
        inserted_at = now()
        with classified(f"inserting {len(result.rows)} rows"):
            if result.rows:
                self.client.insert("k8s_expenses", _expense_columns(result.rows, run.run_id, inserted_at),
                                   column_names=EXPENSE_COLUMNS, column_oriented=True)
            if result.nodes:
                self.client.insert("k8s_nodes_hourly", _node_columns(result.nodes, run.run_id, inserted_at),
                                   column_names=NODE_COLUMNS, column_oriented=True)
            if result.metric_samples:
                self.client.insert("kubecost_metrics_hourly", _metric_columns(result.metric_samples, run.run_id),
                                   column_names=METRIC_COLUMNS, column_oriented=True)
        done = run.succeeded(len(result.rows), result.total_cost, result.samples_seen, coverage,
                             result.unpriced_nodes)
        if done.finished_at >= run.commit_by:
            raise TransientError(f"the run took {done.finished_at - run.started_at} and may not commit any more: "
                                 "cleanup takes runs this old for dead and may be removing its rows")
        self.record(done)
        return done

    # -- cleanup -----------------------------------------------------------------------------------------------

    def collect_garbage(self, since: dt.datetime | None = None, stale_after: dt.timedelta = STALE_RUN) -> Collected:
        """Remove the rows of every run that can no longer become current, in hours whose ledger changed since
        ``since`` (None: every hour), and record those runs as ``collected``.

        Removed: superseded succeeded runs, failed runs, and runs still 'running' that started more than
        ``stale_after`` ago (their process died; a run that old may not commit, ``RunRecord.commit_by``). Kept: the
        current run of each hour and recent running runs (another consumer may still commit them). Ages are the
        server's time since a run's first record, ``since`` is a time of the server's clock. One lightweight
        delete per table and monthly partition for the runs found, more when their list would make a statement
        longer than ``MAX_DELETE_BYTES``; a crash halfway is repaired by the next call (the deletes are idempotent,
        the runs not yet 'collected')."""
        started = time.perf_counter()
        began_at = self.server_now()
        obsolete = self._obsolete_runs(since, began_at - stale_after)
        if not obsolete:
            return Collected(0, 0, time.perf_counter() - started, began_at)
        by_partition: dict[int, list[tuple]] = {}
        for tenant, hour, run_id, partition in obsolete:
            by_partition.setdefault(int(partition), []).append((tenant, int(hour), run_id))
        for partition, runs in sorted(by_partition.items()):
            for batch, listed in delete_batches(runs, partition, self.cluster):
                with classified(f"removing the rows of {len(batch)} obsolete runs"):
                    for table in RUN_TABLES:
                        self.client.command(delete_runs(table, partition, self.cluster, listed),
                                            settings=QUEUED_DELETE)
                at_collection = now()
                self.record(*(RunRecord(tenant, hour, run_id, RunStatus.COLLECTED, "gc", at_collection,
                                        finished_at=at_collection) for tenant, hour, run_id in batch))
        self._await_deletes()
        done = Collected(len(obsolete), len(by_partition), time.perf_counter() - started, began_at)
        log.info("removed the rows of obsolete runs", runs=done.runs, partitions=done.partitions,
                     seconds=round(done.seconds, 3))
        return done

    def _await_deletes(self) -> None:
        """Until ClickHouse has applied every queued delete of the run tables (on a cluster each server applies its
        own, and ``ON CLUSTER`` returns once they are queued everywhere: nothing to wait for here)."""
        if self.cluster:
            return
        deadline = time.monotonic() + CLEANUP_WAIT_SECONDS
        while True:
            (pending, failure), = self.query(
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

    def _obsolete_runs(self, since: dt.datetime | None, stale_before: dt.datetime) -> list[tuple]:
        """(tenant, hour, run id, partition) of the runs ``collect_garbage`` removes: a run still 'running' is
        taken for dead when its first record is older than ``stale_before`` (both the server's clock; ``started_at``
        is the worker's and may be minutes off)."""
        changed = ("AND (cloud_account_id, hour) IN (SELECT cloud_account_id, hour FROM k8s_expense_runs "
                   "WHERE recorded_at >= {since:DateTime64(6, 'UTC')})") if since else ""
        return self.query(
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

    # -- reading the ledger ------------------------------------------------------------------------------------

    def hour_states(self, tenant: str, first_hour: int, last_hour: int) -> dict[int, tuple]:
        """hour -> (the coverage of the current run or None, latest status, latest record time)."""
        window = ("cloud_account_id = {tenant:String} "
                  "AND hour BETWEEN {first:DateTime('UTC')} AND {last:DateTime('UTC')}")
        rows = self.query(
            f"""
            SELECT toUnixTimestamp(latest.hour), current.coverage, latest.last_status, latest.at
            FROM (SELECT hour, argMax(status, recorded_at) AS last_status, max(recorded_at) AS at
                  FROM k8s_expense_runs WHERE {window} AND status != 'collected' GROUP BY hour) AS latest
            LEFT JOIN (SELECT hour, coverage FROM k8s_expense_current_run_records WHERE {window}) AS current
                ON latest.hour = current.hour
            SETTINGS join_use_nulls = 1
            """, {"tenant": tenant, "first": utc(first_hour), "last": utc(last_hour)})
        return {int(h): (None if coverage is None else int(coverage), str(status), _aware(at))
                for h, coverage, status, at in rows}

    def ledger_summary(self, tenant: str | None = None) -> list[tuple]:
        """Per tenant-hour: (tenant, hour, has a current run, latest status, latest error or refusal, the current
        run's rows, cost, unpriced nodes, and what it asked of Thanos: queries, bytes, samples)."""
        where = "cloud_account_id = {tenant:String}" if tenant else "1"
        return self.query(
            f"""
            SELECT latest.cloud_account_id, toUnixTimestamp(latest.hour), current.run_id IS NOT NULL,
                   latest.last_status, latest.last_error, ifNull(current.rows_written, 0),
                   ifNull(current.total_cost, 0), current.unpriced_nodes, ifNull(current.thanos_queries, 0),
                   ifNull(current.thanos_bytes, 0), ifNull(current.thanos_samples, 0)
            FROM (SELECT cloud_account_id, hour, argMax(status, recorded_at) AS last_status,
                         argMaxIf(error, recorded_at, status IN ('failed', 'refused')) AS last_error
                  FROM k8s_expense_runs WHERE {where} AND status != 'collected'
                  GROUP BY cloud_account_id, hour) AS latest
            LEFT JOIN (SELECT cloud_account_id, hour, run_id, rows_written, total_cost, unpriced_nodes,
                              thanos_queries, thanos_bytes, thanos_samples
                       FROM k8s_expense_current_run_records WHERE {where}) AS current
                ON latest.cloud_account_id = current.cloud_account_id AND latest.hour = current.hour
            ORDER BY latest.cloud_account_id, latest.hour
            SETTINGS join_use_nulls = 1
            """, {"tenant": tenant} if tenant else {})

    # -- reading -----------------------------------------------------------------------------------------------

    def query(self, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False) -> list[tuple]:
        """The result's rows; with ``strings_as_bytes`` String columns come as the bytes stored (JSON text
        written into a response as it is, never decoded)."""
        formats = {"String": "bytes"} if strings_as_bytes else None
        with classified("querying"):
            return self.client.query(sql, parameters=parameters or {}, query_formats=formats).result_rows

    def query_with_names(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]:
        """The result's column names and rows (the ``sql`` command prints both)."""
        with classified("querying"):
            result = self.client.query(sql, parameters=parameters or {})
        return list(result.column_names), result.result_rows

    def stream(self, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False) -> Iterator[tuple]:
        """The result's rows, a block at a time as ClickHouse sends them: memory bounded by one block however
        long the result. A generator: the query runs at the first ``next()``; closing it early ends the query.
        While it is open the client serves nothing else (``ReadClients`` gives each request a client of its own)."""
        formats = {"String": "bytes"} if strings_as_bytes else None
        with classified("querying"):
            with self.client.query_row_block_stream(sql, parameters=parameters or {}, query_formats=formats,
                                                    settings=STREAM_BLOCK) as blocks:
                for block in blocks:
                    yield from block


# Rows a read answers from one plain query before it streams the rest: a plain query is a few ms faster than a
# stream, and 10,000 rows (a 30-day kubecost_metrics answer is 7,000 texts, ~10 MB) are bounded to hold.
FIRST_PAGE_ROWS = 10_000
# Idle clients ReadClients keeps for the next requests; more are opened while more requests are in flight.
IDLE_READ_CLIENTS = 8


class ReadClients:
    """The read API's ClickHouse clients: one per request in flight, kept for the next ones.

    A streamed answer holds its client until its last row: with chDB a client's handle is locked for the whole
    stream (another query on it waits, or fails on the thread that opened the stream), and over HTTP the
    response is being read. So each request takes a client of its own; chDB serves any number of handles on
    the process's one engine, and a server any number of connections."""

    def __init__(self, url: str):
        self.url = url
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = connect(self.url)
        try:
            yield client
        except BaseException:
            # a stream closed early (the caller went away) or a failed query: never hand out a client that may
            # still be busy or broken
            with contextlib.suppress(Exception):
                client.close()
            raise
        with self._lock:
            if len(self._idle) < IDLE_READ_CLIENTS:
                self._idle.append(client)
                client = None
        if client is not None:
            client.close()

    def query(self, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False) -> list[tuple]:
        """The whole result, as ``ClickHouseSink.query`` returns it: for answers of a bounded size."""
        with self._client() as client:
            return ClickHouseSink(client).query(sql, parameters, strings_as_bytes)

    def stream(self, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False) -> Iterator[tuple]:
        """The rows of ``sql`` (which must end with a total ``ORDER BY``), held at most a page at a time: the first
        ``FIRST_PAGE_ROWS`` in one plain query (most answers end there, without a stream's overhead), the rest
        streamed from that offset on a client of the request's own, held until the last row."""
        with self._client() as client:
            first = ClickHouseSink(client).query(f"{sql} LIMIT {FIRST_PAGE_ROWS + 1}", parameters, strings_as_bytes)
        yield from first[:FIRST_PAGE_ROWS]
        if len(first) > FIRST_PAGE_ROWS:
            with self._client() as client:
                yield from ClickHouseSink(client).stream(f"{sql} OFFSET {FIRST_PAGE_ROWS} ROWS", parameters,
                                                         strings_as_bytes)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                client.close()


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


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _expense_columns(rows: list[ExpenseRow], run_id: uuid.UUID, inserted_at: dt.datetime) -> list[list]:
    """Column-oriented: one list per column of EXPENSE_COLUMNS (the hour as a datetime, the run's id and time).
    Unknown usage stays None: its columns are Nullable, so it is stored NULL, never 0."""
    return _run_columns(rows, ROW_FIELDS, run_id, inserted_at)


def _node_columns(nodes: list[NodeRow], run_id: uuid.UUID, inserted_at: dt.datetime) -> list[list]:
    """Column-oriented: one list per column of NODE_COLUMNS."""
    return _run_columns(nodes, NODE_FIELDS, run_id, inserted_at)


def _run_columns(rows: list, fields: list[str], run_id: uuid.UUID, inserted_at: dt.datetime) -> list[list]:
    columns = [[getattr(r, name) for r in rows] for name in fields]
    hours = columns[fields.index("hour")]
    as_datetime = {hour: utc(hour) for hour in set(hours)}  # a run's rows share one or a few hours
    columns[fields.index("hour")] = [as_datetime[hour] for hour in hours]
    return [*columns, [run_id] * len(rows), [inserted_at] * len(rows)]


def _metric_columns(samples: list[MetricSample], run_id: uuid.UUID) -> list[list]:
    return [
        [s.cloud_account_id for s in samples],
        [utc(s.hour) for s in samples],
        [s.metric for s in samples],
        [s.labels for s in samples],
        [s.value for s in samples],
        [s.samples for s in samples],
        [json.dumps({"timestamp": s.hour, "value": s.value, "labels": dict(sorted(s.labels.items()))},
                    separators=(",", ":"), allow_nan=False) for s in samples],
        [run_id] * len(samples),
    ]
