"""Sink: writing a tenant-hour's rows into ClickHouse so that reruns replace them exactly.

One code path, clickhouse-connect, for the embedded chDB (``chdb:///path``) and a ClickHouse server
(``http(s)://...``). The write protocol of one run:

1. ledger row ``running`` (run id, start time);
2. insert the expense rows and metric samples, tagged with the run id (invisible: no view selects them);
3. ledger row ``succeeded``: from this single-row insert on, ``k8s_expenses_current`` shows the new run's
   rows instead of the previous run's; a reader sees the old hour or the new one, never a mix;
4. delete the rows of runs that can no longer become current (superseded or failed runs of that hour).

A crash anywhere leaves at worst invisible rows of an unfinished run, removed by the next success.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import clickhouse_connect
import structlog
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from ..errors import TerminalError, TransientError
from ..model.allocation import ExpenseRow, HourResult, MetricSample
from .cluster import local_table

log = structlog.get_logger(__name__)

EXPENSE_COLUMNS = [
    "cloud_account_id", "cluster_id", "hour", "namespace", "workload_kind", "workload_name", "pod", "node",
    "running_minutes", "cpu_core_hours", "ram_byte_hours", "gpu_hours", "pv_byte_hours",
    "cpu_cost", "ram_cost", "gpu_cost", "pv_cost", "network_cost", "lb_cost", "management_cost",
    "labels", "run_id", "inserted_at",
]  # total_cost is computed on read (migration 0006)
METRIC_COLUMNS = ["cloud_account_id", "hour", "metric", "labels", "value", "samples", "point_json", "run_id"]
# ClickHouse error codes that pass: the chDB path locked by another process (76), too many parts / memory
# (252, 241), timeouts (159, 209), a replica or the keeper away (242, 999), the server shutting down (210), a full
# disk (243 NOT_ENOUGH_SPACE: merges, TTLs and the operator free it).
TRANSIENT_CODES = {76, 159, 209, 210, 241, 242, 243, 252, 999}
# Tables whose rows carry the run id of the run that wrote them.
RUN_TABLES = ("k8s_expenses", "k8s_expenses_namespace_hourly", "kubecost_metrics_hourly",
              "kubecost_metric_points_hourly")
# Rows per block of a streamed result, and the bytes ClickHouse aims a block at: what the reader holds at once
# (a text of a 2,000-pod tenant's metric-hour is about 1.3 kB).
STREAM_BLOCK = {"max_block_size": 256, "preferred_block_size_bytes": 256 * 1024}
# A run still 'running' after this long is taken for dead (its process was killed) and may be cleaned up.
STALE_RUN = dt.timedelta(hours=2)


def utc(ts: int | float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


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
class RunRecord:
    cloud_account_id: str
    hour: int
    run_id: uuid.UUID
    status: str
    reason: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    rows_written: int = 0
    total_cost: float = 0.0
    samples_seen: int = 0
    coverage: int = 0
    error: str = ""


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

    def record(self, run: RunRecord) -> None:
        with classified(f"recording run {run.run_id} as {run.status}"):
            self.client.insert(
                "k8s_expense_runs",
                [[run.cloud_account_id, utc(run.hour), run.run_id, run.status, run.reason, run.started_at,
                  run.finished_at, run.rows_written, run.total_cost, run.samples_seen, run.coverage,
                  run.error[:2000], now()]],
                column_names=["cloud_account_id", "hour", "run_id", "status", "reason", "started_at", "finished_at",
                              "rows_written", "total_cost", "samples_seen", "coverage", "error", "recorded_at"],
            )

    # -- one tenant-hour ---------------------------------------------------------------------------------------

    def write_hour(self, run: RunRecord, result: HourResult) -> RunRecord:
        """Insert the rows of a run, commit it, clean up older runs; returns the succeeded record."""
        inserted_at = now()
        with classified(f"inserting {len(result.rows)} rows"):
            if result.rows:
                self.client.insert("k8s_expenses", _expense_columns(result.rows, run.run_id, inserted_at),
                                   column_names=EXPENSE_COLUMNS, column_oriented=True)
            if result.metric_samples:
                self.client.insert("kubecost_metrics_hourly", _metric_columns(result.metric_samples, run.run_id),
                                   column_names=METRIC_COLUMNS, column_oriented=True)
        done = RunRecord(run.cloud_account_id, run.hour, run.run_id, "succeeded", run.reason, run.started_at,
                         finished_at=now(), rows_written=len(result.rows), total_cost=result.total_cost,
                         samples_seen=result.samples_seen, coverage=result.coverage)
        self.record(done)
        self.remove_obsolete_runs(run.cloud_account_id, run.hour)
        return done

    def remove_obsolete_runs(self, tenant: str, hour: int, stale_after: dt.timedelta = STALE_RUN) -> int:
        """Delete the rows of the hour's runs that can no longer become current; returns how many runs.

        Kept: the current (latest succeeded) run, and runs still 'running' that started recently (another
        consumer may be writing them and commit after us; its success then cleans up ours).
        """
        with classified("finding obsolete runs"):
            obsolete = self.client.query(
                """
                SELECT run_id FROM k8s_expense_runs
                WHERE cloud_account_id = {tenant:String} AND hour = {hour:DateTime('UTC')} AND status != 'queued'
                GROUP BY run_id
                HAVING run_id != (
                        SELECT argMax(run_id, recorded_at) FROM k8s_expense_runs
                        WHERE cloud_account_id = {tenant:String} AND hour = {hour:DateTime('UTC')}
                          AND status = 'succeeded')
                   AND (argMax(status, recorded_at) != 'running' OR min(started_at) < {stale:DateTime64(3, 'UTC')})
                """,
                parameters={"tenant": tenant, "hour": utc(hour), "stale": now() - stale_after},
            ).result_rows
        run_ids = [r[0] for r in obsolete]
        if not run_ids:
            return 0
        with classified("deleting obsolete runs"):
            for table in RUN_TABLES:
                self.client.command(
                    f"DELETE FROM {local_table(table, self.cluster)} WHERE cloud_account_id = {{tenant:String}} "
                    "AND hour = {hour:DateTime('UTC')} AND run_id IN {runs:Array(UUID)}",
                    parameters={"tenant": tenant, "hour": utc(hour), "runs": run_ids},
                )
        log.info("removed obsolete runs", tenant=tenant, hour=utc(hour).isoformat(), runs=len(run_ids))
        return len(run_ids)

    def remove_abandoned_runs(self, since_hour: int, stale_after: dt.timedelta = STALE_RUN) -> int:
        """Clean up after crashes: rows of runs that never committed, in hours from ``since_hour`` on.

        Such rows are invisible (no view selects them) and normally removed when their hour is next written;
        this finds hours that will not be written again. Returns the number of hours cleaned."""
        hours = self.query(
            """
            SELECT DISTINCT cloud_account_id, toUnixTimestamp(hour) FROM k8s_expenses
            WHERE hour >= {since:DateTime('UTC')} AND (cloud_account_id, hour, run_id) NOT IN
                  (SELECT cloud_account_id, hour, run_id FROM k8s_expense_current_runs
                   WHERE hour >= {since:DateTime('UTC')})
            """, {"since": utc(since_hour)})
        return sum(self.remove_obsolete_runs(tenant, int(hour), stale_after) > 0 for tenant, hour in hours)

    # -- reading the ledger ------------------------------------------------------------------------------------

    def hour_states(self, tenant: str, first_hour: int, last_hour: int) -> dict[int, tuple]:
        """hour -> (coverage of the current run or None, latest status, latest record time) from the ledger."""
        rows = self.query(
            """
            SELECT toUnixTimestamp(hour), countIf(status = 'succeeded') > 0,
                   argMaxIf(coverage, recorded_at, status = 'succeeded'), argMax(status, recorded_at),
                   max(recorded_at)
            FROM k8s_expense_runs
            WHERE cloud_account_id = {tenant:String}
              AND hour BETWEEN {first:DateTime('UTC')} AND {last:DateTime('UTC')}
            GROUP BY hour
            """, {"tenant": tenant, "first": utc(first_hour), "last": utc(last_hour)})
        return {int(h): (int(coverage) if ok else None, str(status), _aware(at)) for h, ok, coverage, status, at in rows}

    def ledger_summary(self, tenant: str | None = None) -> list[tuple]:
        """Per tenant-hour: (tenant, hour, succeeded ever, latest status, latest error, latest run's rows and cost)."""
        where = "WHERE cloud_account_id = {tenant:String}" if tenant else ""
        return self.query(
            f"""
            SELECT cloud_account_id, toUnixTimestamp(hour), countIf(status = 'succeeded') > 0,
                   argMax(status, recorded_at), argMaxIf(error, recorded_at, status = 'failed'),
                   argMaxIf(rows_written, recorded_at, status = 'succeeded'),
                   argMaxIf(total_cost, recorded_at, status = 'succeeded')
            FROM k8s_expense_runs {where}
            GROUP BY cloud_account_id, hour ORDER BY cloud_account_id, hour
            """, {"tenant": tenant} if tenant else {})

    # -- reading -----------------------------------------------------------------------------------------------

    def query(self, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False) -> list[tuple]:
        """The result's rows; with ``strings_as_bytes`` String columns come as the bytes stored (JSON text
        written into a response as it is, never decoded)."""
        formats = {"String": "bytes"} if strings_as_bytes else None
        with classified("querying"):
            return self.client.query(sql, parameters=parameters or {}, query_formats=formats).result_rows

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


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _expense_columns(rows: list[ExpenseRow], run_id: uuid.UUID, inserted_at: dt.datetime) -> list[list]:
    hours = {r.hour: utc(r.hour) for r in rows}
    columns: list[list] = [[] for _ in EXPENSE_COLUMNS]
    for r in rows:
        values = (r.cloud_account_id, r.cluster_id, hours[r.hour], r.namespace, r.workload_kind, r.workload_name,
                  r.pod, r.node, r.running_minutes, r.cpu_core_hours, r.ram_byte_hours, r.gpu_hours,
                  r.pv_byte_hours, r.cpu_cost, r.ram_cost, r.gpu_cost, r.pv_cost, r.network_cost, r.lb_cost,
                  r.management_cost, r.labels, run_id, inserted_at)
        for column, value in zip(columns, values):
            column.append(value)
    return columns


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
