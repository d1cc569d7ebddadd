"""The run ledger (``k8s_expense_runs``), in one place: what a run of a tenant-hour is, the states it goes through,
which run of an hour readers see, when a run may still commit and when a new run must not replace the current one;
and the ledger's SQL: recording runs and reading them back as named rows. ``k8s_expense_current_runs`` (migration
0004) is the SQL form of the current-run rule; ``k8s_expense_current_run_records`` (0010) is the ledger record of
that run.

A run goes ``running`` -> ``succeeded`` | ``failed`` | ``refused``; nothing else. The scheduler records
``queued`` under a run id of its own when it enqueues an hour, and cleanup records ``collected`` once a run's rows
are gone. The current run of a tenant-hour is its latest ``succeeded`` run (by ``recorded_at``, which the ClickHouse
server stamps: the workers' clocks need not agree, migration 0015): a reader sees the
hour as that run wrote it, and a run that is still writing, failed, was refused or was superseded is invisible.
Every age of a record is measured against the server's time (``server_now``).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass, replace
from typing import Any, Iterable

from ..errors import TransientError
from ..hours import is_hour_start, now, utc
from ..model.series import NODE_CPU_HOURLY_COST, RUNNING
from . import schema
from .client import insert, query

# A run's coverage: the samples of these series in its hour. The scheduler re-counts them in Thanos (more: late
# samples arrived, the hour is computed again) and refusals compare them (far fewer: the data behind the hour
# was lost). Node prices and pod running series are in every useful scrape and arrive in the same remote-write
# batches as the rest.
SENTINEL_METRICS = (NODE_CPU_HOURLY_COST, RUNNING)
# A run still 'running' this long after its first record (the server's clock) is taken for dead (its process was
# killed): cleanup may remove its rows, so a run this old may not commit any more (``RunRecord.commit_by``).
STALE_RUN = dt.timedelta(hours=2)
# A run that took this much of STALE_RUN fails instead of committing: cleanup could be removing its rows. Measured on
# the worker's clock from before its first record: whatever that clock's offset from the server's, the run stops
# committing before cleanup's STALE_RUN has passed.
COMMIT_DEADLINE = STALE_RUN - dt.timedelta(minutes=15)
# What a record sends: the ledger's declared columns but recorded_at, which the server stamps.
LEDGER_COLUMNS = schema.written_columns(schema.LEDGER)


class RunStatus(enum.StrEnum):
    QUEUED = "queued"        # the scheduler enqueued the hour (a record of its own, never written by a run)
    RUNNING = "running"      # started; its rows, if any, are invisible
    SUCCEEDED = "succeeded"  # committed: the latest succeeded run of the hour is the one readers see
    FAILED = "failed"        # stopped by an error; its rows, if any, stay invisible until cleanup removes them
    REFUSED = "refused"      # found markedly less data than the current run: nothing written, the hour unchanged
    COLLECTED = "collected"  # cleanup removed the rows of this superseded, failed or abandoned run


PENDING = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})


@dataclass(frozen=True)
class RunRecord:
    """One record of the ledger: a run's state at ``recorded_at`` (the server stamps it when it stores the record;
    ``started_at`` and ``finished_at`` are the worker's clock, for durations only)."""

    cloud_account_id: str
    hour: int
    run_id: uuid.UUID
    status: RunStatus
    reason: str  # why the run was asked for: scheduled, catch-up, late-data, rerun, backfill
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    rows_written: int = 0
    total_cost: float = 0.0
    samples_seen: int = 0
    coverage: int = 0  # samples of SENTINEL_METRICS in the hour
    error: str = ""  # why it failed or was refused
    # nodes whose pods were priced by the configured defaults or not at all (no price series): the ledger's record
    # of a price gap, for status and /metrics (migration 0011)
    unpriced_nodes: tuple[str, ...] = ()
    # what the run asked of Thanos: requests sent (retries included), bytes and samples received (migration 0013)
    thanos_queries: int = 0
    thanos_bytes: int = 0
    thanos_samples: int = 0

    @classmethod
    def start(cls, tenant: str, hour: int, reason: str) -> "RunRecord":
        if not is_hour_start(hour):
            raise ValueError(f"hour {hour} is not on an hour boundary")
        return cls(tenant, hour, uuid.uuid4(), RunStatus.RUNNING, reason, started_at=now())

    @classmethod
    def queued(cls, tenant: str, hour: int, reason: str) -> "RunRecord":
        return cls(tenant, hour, uuid.uuid4(), RunStatus.QUEUED, reason, started_at=now())

    def succeeded(self, rows_written: int, total_cost: float, samples_seen: int, coverage: int,
                  unpriced_nodes: Iterable[str] = ()) -> "RunRecord":
        return self._end(RunStatus.SUCCEEDED, rows_written=rows_written, total_cost=total_cost,
                         samples_seen=samples_seen, coverage=coverage, unpriced_nodes=tuple(unpriced_nodes))

    def failed(self, error: str) -> "RunRecord":
        return self._end(RunStatus.FAILED, error=error)

    def refused(self, why: str, rows_found: int, total_cost: float, samples_seen: int, coverage: int,
                unpriced_nodes: Iterable[str] = ()) -> "RunRecord":
        # rows_written holds the rows the run would have written: the ledger shows what it found beside why
        return self._end(RunStatus.REFUSED, error=why, rows_written=rows_found, total_cost=total_cost,
                         samples_seen=samples_seen, coverage=coverage, unpriced_nodes=tuple(unpriced_nodes))

    def measured(self, queries: int, bytes_received: int, samples: int) -> "RunRecord":
        """The run with what it asked of Thanos so far; the record it ends with keeps it."""
        return replace(self, thanos_queries=queries, thanos_bytes=bytes_received, thanos_samples=samples)

    @property
    def commit_by(self) -> dt.datetime:
        """The run's commit deadline, on the worker's clock: from then on it must fail instead of committing."""
        return self.started_at + COMMIT_DEADLINE

    def may_commit(self, at: dt.datetime) -> bool:
        return at < self.commit_by

    def succeeded_in_time(self, rows_written: int, total_cost: float, samples_seen: int, coverage: int,
                          unpriced_nodes: Iterable[str] = ()) -> "RunRecord":
        """The succeeded record that commits the run; ``TransientError`` once the run's deadline has passed."""
        done = self.succeeded(rows_written, total_cost, samples_seen, coverage, unpriced_nodes)
        if not self.may_commit(done.finished_at):
            raise TransientError(f"the run took {done.finished_at - self.started_at} and may not commit any more: "
                                 "cleanup takes runs this old for dead and may be removing its rows")
        return done

    def _end(self, status: RunStatus, **changes) -> "RunRecord":
        if self.status != RunStatus.RUNNING:
            raise ValueError(f"a {self.status} run cannot become {status}")
        return replace(self, status=status, finished_at=now(), **changes)


@dataclass(frozen=True)
class CurrentRun:
    """What the ledger says of the run readers see for a tenant-hour (``k8s_expense_current_run_records``)."""

    run_id: uuid.UUID
    coverage: int
    rows_written: int


def refusal(current: CurrentRun | None, coverage: int, rows: int, keep_fraction: float) -> str | None:
    """Why a run that found ``coverage`` sentinel samples and ``rows`` rows must not replace the hour's current run,
    or None when it may. A run is refused when it found markedly less than the current run: below ``keep_fraction``
    of its coverage or of its rows (Thanos's retention dropped the raw samples, a compactor downsampled
    them, a Prometheus lost data). ``keep_fraction`` 0 never refuses; an hour without a current run never refuses.
    Late data only adds samples, so a late-data rerun passes."""
    if current is None or keep_fraction <= 0:
        return None
    short = []
    if coverage < keep_fraction * current.coverage:
        short.append(f"{coverage} sentinel samples against {current.coverage}")
    if rows < keep_fraction * current.rows_written:
        short.append(f"{rows} rows against {current.rows_written}")
    if not short:
        return None
    return (f"found markedly less data than the current run {current.run_id} ({', '.join(short)}; "
            f"KCW_REFUSE_BELOW={keep_fraction:g}): the hour is kept as it is; rerun with --force to replace it")


# -- the ledger's SQL: records in, named rows out ------------------------------------------------------------------


@dataclass(frozen=True)
class HourState:
    """What the run ledger knows about one tenant-hour: what the scheduler plans by."""

    current_coverage: int | None  # of the current run; None: no run of the hour succeeded
    last_status: str  # the latest record: queued, running, succeeded, failed or refused
    last_recorded_at: dt.datetime

    def is_pending(self, trusted_after: dt.datetime) -> bool:
        return self.last_status in PENDING and self.last_recorded_at >= trusted_after


@dataclass(frozen=True)
class HourSummary:
    """One tenant-hour as ``status`` reports it: its latest record and, when it has one, its current run."""

    cloud_account_id: str
    hour: int
    complete: bool  # it has a current run
    last_status: str
    last_error: str  # of the latest failed or refused record
    rows_written: int  # of the current run (0 without one), as are the rest
    total_cost: float
    unpriced_nodes: tuple[str, ...]
    thanos_queries: int  # what the current run asked of Thanos (runs recorded before migration 0013: 0)
    thanos_bytes: int
    thanos_samples: int


def record(client: Any, *runs: RunRecord) -> None:
    if not runs:
        return
    insert(client, schema.LEDGER, LEDGER_COLUMNS, [
        [r.cloud_account_id, utc(r.hour), r.run_id, str(r.status), r.reason, r.started_at, r.finished_at,
         r.rows_written, r.total_cost, r.samples_seen, r.coverage, r.error[:2000],
         list(r.unpriced_nodes), r.thanos_queries, r.thanos_bytes, r.thanos_samples] for r in runs],
        action=f"recording run {runs[0].run_id} as {runs[0].status}")


def server_now(client: Any) -> dt.datetime:
    """The ClickHouse server's time: the clock the ledger's records are stamped by, so the one their ages are
    measured against (a worker's own clock may be minutes off)."""
    (at,), = query(client, "SELECT now64(6, 'UTC')")
    return _aware(at)


def current_runs(client: Any, tenant: str, hours: list[int]) -> dict[int, CurrentRun]:
    """The run readers see for each of the tenant's ``hours`` that has one, as ``k8s_expense_current_runs`` defines
    it: one query for a batch."""
    if not hours:
        return {}
    rows = query(client, "SELECT toUnixTimestamp(hour), run_id, coverage, rows_written "
                         "FROM k8s_expense_current_run_records WHERE cloud_account_id = {tenant:String} "
                         "AND hour IN {hours:Array(DateTime('UTC'))}",
                 {"tenant": tenant, "hours": [utc(h) for h in hours]})
    return {int(hour): CurrentRun(run_id, int(coverage), int(rows_written)) for hour, run_id, coverage, rows_written
            in rows}


def hour_states(client: Any, tenant: str, first_hour: int, last_hour: int) -> dict[int, HourState]:
    """The state of each hour of ``[first_hour, last_hour]`` the ledger holds a record of."""
    window = ("cloud_account_id = {tenant:String} "
              "AND hour BETWEEN {first:DateTime('UTC')} AND {last:DateTime('UTC')}")
    rows = query(client,
                 f"""
                 SELECT toUnixTimestamp(latest.hour), current.coverage, latest.last_status, latest.at
                 FROM (SELECT hour, argMax(status, recorded_at) AS last_status, max(recorded_at) AS at
                       FROM k8s_expense_runs WHERE {window} AND status != 'collected' GROUP BY hour) AS latest
                 LEFT JOIN (SELECT hour, coverage FROM k8s_expense_current_run_records WHERE {window}) AS current
                     ON latest.hour = current.hour
                 SETTINGS join_use_nulls = 1
                 """, {"tenant": tenant, "first": utc(first_hour), "last": utc(last_hour)})
    return {int(h): HourState(None if coverage is None else int(coverage), str(status), _aware(at))
            for h, coverage, status, at in rows}


def ledger_summary(client: Any, tenant: str | None = None) -> list[HourSummary]:
    """Every tenant-hour of the ledger (of ``tenant`` alone when given), by tenant and hour."""
    where = "cloud_account_id = {tenant:String}" if tenant else "1"
    rows = query(client,
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
    return [HourSummary(tenant_id, int(hour), bool(complete), str(status), error, int(rows_written), total_cost,
                        tuple(unpriced or ()), int(queries), int(received), int(samples))
            for tenant_id, hour, complete, status, error, rows_written, total_cost, unpriced, queries, received,
            samples in rows]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
