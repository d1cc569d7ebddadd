"""The store as the pipeline, the jobs and the CLI hold it: one ClickHouse client and what they ask of it, each
answered by the module that owns it (``client.py`` queries, ``ledger.py`` the run ledger, ``writer.py`` a run's rows,
``cleanup.py`` the rows of obsolete runs)."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any, Iterator

from ..errors import TransientError
from ..model.rows import HourResult
from . import cleanup, client as clickhouse_client, days, ledger, writer
from .cleanup import Collected
from .ledger import STALE_RUN, CurrentRun, HourState, HourSummary, RunRecord


class ClickHouseSink:
    def __init__(self, client: Any, cluster: str | None = None, url: str | None = None):
        self.client = client
        self.cluster = cluster  # KCW_CLICKHOUSE_CLUSTER: deletes go to the local tables ON CLUSTER
        self.url = url  # where the client was opened, when known: ReadClients opens more there

    @classmethod
    def open(cls, url: str, cluster: str | None = None) -> "ClickHouseSink":
        return cls(clickhouse_client.connect(url), cluster, url)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    # -- the ledger --------------------------------------------------------------------------------------------

    def record(self, *runs: RunRecord) -> None:
        ledger.record(self.client, *runs)

    def server_now(self) -> dt.datetime:
        return ledger.server_now(self.client)

    def current_run(self, tenant: str, hour: int) -> CurrentRun | None:
        return self.current_runs(tenant, [hour]).get(hour)

    def current_runs(self, tenant: str, hours: list[int]) -> dict[int, CurrentRun]:
        return ledger.current_runs(self.client, tenant, hours)

    def hour_states(self, tenant: str, first_hour: int, last_hour: int) -> dict[int, HourState]:
        return ledger.hour_states(self.client, tenant, first_hour, last_hour)

    def ledger_summary(self, tenant: str | None = None) -> list[HourSummary]:
        return ledger.ledger_summary(self.client, tenant)

    # -- one tenant-hour ---------------------------------------------------------------------------------------

    def write_hour(self, run: RunRecord, result: HourResult, coverage: int = 0) -> RunRecord:
        """One run written and committed (``write_hours``); raises its error if it could not commit."""
        (ended,) = self.write_hours([(run, result, coverage)])
        if isinstance(ended, Exception):
            raise ended
        return ended

    def write_hours(self, runs: list[tuple[RunRecord, HourResult, int]]) -> list[RunRecord | TransientError]:
        """Insert the rows of runs (expenses, nodes, metric samples; one insert per table for all) and commit each
        with its coverage and unpriced nodes, in one ledger insert, unless its deadline
        (``RunRecord.succeeded_in_time``) has passed meanwhile: per run its succeeded record, or the error of one too
        late, which stays uncommitted. Older runs stay underneath, invisible, until ``collect_garbage``."""
        writer.insert_rows(self.client, [(run.run_id, result) for run, result, _ in runs])
        ended: list[RunRecord | TransientError] = []
        for run, result, coverage in runs:
            try:
                ended.append(run.succeeded_in_time(len(result.rows), result.total_cost, result.samples_seen,
                                                   coverage, result.unpriced_nodes))
            except TransientError as exc:
                ended.append(exc)
        self.record(*(e for e in ended if isinstance(e, RunRecord)))
        return ended

    def rebuild_days(self, ended: list[RunRecord | TransientError]) -> None:
        """The daily tier's days of the runs that committed, built again once the day is over (never raises)."""
        days.rebuild_committed(self.client, ended)

    def collect_garbage(self, since: dt.datetime | None = None, stale_after: dt.timedelta = STALE_RUN) -> Collected:
        return cleanup.collect_garbage(self.client, self.cluster, since, stale_after)

    # -- reading -----------------------------------------------------------------------------------------------

    def query(self, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False) -> list[tuple]:
        return clickhouse_client.query(self.client, sql, parameters, strings_as_bytes)

    def query_with_names(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]:
        return clickhouse_client.query_with_names(self.client, sql, parameters)

    def stream(self, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False) -> Iterator[tuple]:
        return clickhouse_client.stream(self.client, sql, parameters, strings_as_bytes)
