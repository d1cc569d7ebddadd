"""The run ledger's order is the ClickHouse server's, whatever the workers' clocks say; cleanup's statements stay
under ClickHouse's query size however many runs are obsolete.

Each worker is a thread with a client of its own (chDB allows one process per path: threads stand in for the
consumer replicas and the CronJob of a deployment) and a Python clock of its own: ``hours.now``, the worker's one
wall clock, is ``offset`` away from the real one in that thread. chDB's ``now()`` stays the real clock: the server's.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from kubecost_worker.store import ledger as runs_module
from kubecost_worker.read.metroculus import WINDOW, bound_params
from kubecost_worker.jobs.scheduler import Scheduler
from kubecost_worker.store.ledger import RunRecord, RunStatus
from kubecost_worker.hours import now, utc
from kubecost_worker.store import cleanup
from kubecost_worker.store import migrations
from kubecost_worker.store.cleanup import RUN_TABLES
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.store.writer import EXPENSE_COLUMNS, as_expense_columns

from .helpers import ch_client
from .test_store import H0, commit, current, result_with, sink  # noqa: F401  (sink: the fixture)

pytestmark = [pytest.mark.needs_chdb]

FAST = dt.timedelta(minutes=10)
SLOW = -dt.timedelta(minutes=10)
_REAL_NOW = runs_module.now
_clock = threading.local()


def _worker_now() -> dt.datetime:
    return _REAL_NOW() + getattr(_clock, "offset", dt.timedelta(0))


@pytest.fixture
def worker_clocks(monkeypatch):
    """Every name the worker's modules bound to ``hours.now`` reads the calling thread's clock."""
    for name, module in list(sys.modules.items()):
        if name.startswith("kubecost_worker"):
            for attribute, value in list(vars(module).items()):
                if value is _REAL_NOW:
                    monkeypatch.setattr(module, attribute, _worker_now)
    yield


def as_worker(ch_url: str, offset: dt.timedelta, work: Callable[[ClickHouseSink], Any]) -> Any:
    """``work`` done by a worker of its own: a thread, a client, a clock ``offset`` from the server's."""
    outcome: dict[str, Any] = {}

    def main() -> None:
        _clock.offset = offset
        try:
            with ch_client(ch_url) as client:
                outcome["value"] = work(ClickHouseSink(client))
        except BaseException as exc:  # noqa: BLE001  (raised again in the test's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def api_rows(reader, tenant="t-1", hour=H0) -> list[tuple]:
    """The hour as the read API selects it (its current-run rule, ``queries.WINDOW``)."""
    return reader.query(f"SELECT pod, cpu_cost FROM k8s_expenses WHERE {WINDOW} ORDER BY pod",
                        bound_params(tenant, hour, hour + 3600))


@pytest.mark.parametrize("first, second", [(FAST, dt.timedelta(0)), (dt.timedelta(0), SLOW)],
                         ids=["fast-worker-then-correct", "correct-worker-then-slow"])
def test_a_rerun_replaces_the_hour_whatever_the_workers_clocks(ch_url, sink, worker_clocks, first, second):
    """Issue 25, item 3: a rerun by a worker 10 minutes fast, then a forced rerun by a correctly clocked one (and the
    same with a correct worker, then one 10 minutes slow): readers see the last run, and cleanup keeps its rows."""
    commit(sink, result_with({"a": 1.0, "b": 1.0}))
    earlier = as_worker(ch_url, first, lambda s: commit(s, result_with({"a": 2.0})))
    later = as_worker(ch_url, second, lambda s: commit(s, result_with({"a": 3.0, "c": 0.5})))
    assert earlier.status == later.status == RunStatus.SUCCEEDED
    assert current(sink) == [("a", 3.0), ("c", 0.5)]
    assert api_rows(sink) == [("a", 3.0), ("c", 0.5)]
    assert sink.current_run("t-1", H0).run_id == later.run_id
    # cleanup by the skewed worker removes the two superseded runs and keeps the current one's rows everywhere
    assert as_worker(ch_url, first or second, lambda s: s.collect_garbage()).runs == 2
    for table in RUN_TABLES:
        assert sink.query(f"SELECT DISTINCT run_id FROM {table}") == [(later.run_id,)], table
    assert current(sink) == [("a", 3.0), ("c", 0.5)] and api_rows(sink) == [("a", 3.0), ("c", 0.5)]


@pytest.mark.parametrize("writer, collector", [(SLOW, dt.timedelta(0)), (dt.timedelta(0), FAST)],
                         ids=["slow-writer", "fast-cleanup"])
def test_a_running_run_is_taken_for_dead_by_the_servers_clock(ch_url, sink, worker_clocks, writer, collector):
    """A run that started a moment ago is not stale after 5 minutes however far apart the writer's and the
    cleanup's clocks are: its age is the server's time since its first record."""
    commit(sink, result_with({"a": 1.0}))

    def start_writing(s: ClickHouseSink) -> RunRecord:
        run = RunRecord.start("t-1", H0, "test")
        s.record(run)
        s.client.insert("k8s_expenses", as_expense_columns(result_with({"a": 9.0}).rows, run.run_id, now()),
                        column_names=EXPENSE_COLUMNS, column_oriented=True)
        return run

    running = as_worker(ch_url, writer, start_writing)
    assert as_worker(ch_url, collector, lambda s: s.collect_garbage(stale_after=dt.timedelta(minutes=5))).runs == 0
    assert sink.query("SELECT count() FROM k8s_expenses WHERE run_id = {r:UUID}", {"r": running.run_id}) == [(1,)]
    done = as_worker(ch_url, writer, lambda s: s.write_hour(running, result_with({"b": 9.0})))
    assert done.status == RunStatus.SUCCEEDED and current(sink) == [("a", 9.0), ("b", 9.0)]


class _Broker(SimpleNamespace):
    is_memory: bool


@pytest.mark.parametrize("offset", [dt.timedelta(hours=3), -dt.timedelta(hours=3)], ids=["fast", "slow"])
@pytest.mark.parametrize("memory", [False, True], ids=["rabbitmq", "memory"])
def test_the_scheduler_trusts_pending_records_by_the_servers_clock(ch_url, sink, worker_clocks, offset, memory):
    """A scheduler 3 hours off trusts a record queued a moment ago (by another worker; with an in-memory queue, by
    itself since it started) and takes one queued 2.5 hours ago by the server's clock for lost."""
    def scheduler_trusts(hours: list[int]) -> list[bool]:
        def ask(s: ClickHouseSink) -> list[bool]:
            scheduler = Scheduler(SimpleNamespace(config=None, sink=s), _Broker(is_memory=memory))
            if memory:  # an in-memory queue trusts what was queued since the process started, by itself
                s.record(RunRecord.queued("t-1", hours[0], "scheduled"))
            trusted_after = scheduler._trusted_after()
            states = s.hour_states("t-1", min(hours), max(hours))
            return [states[hour].is_pending(trusted_after) for hour in hours]
        return as_worker(ch_url, offset, ask)

    recent, lost = H0, H0 + 3600
    sink.record(RunRecord.queued("t-1", recent, "scheduled"))
    (old,), = sink.query("SELECT now64(6, 'UTC') - INTERVAL 150 MINUTE")
    sink.client.insert("k8s_expense_runs", [["t-1", utc(lost), uuid.uuid4(), "queued", "scheduled", old, old]],
                       column_names=["cloud_account_id", "hour", "run_id", "status", "reason", "started_at",
                                     "recorded_at"])
    assert scheduler_trusts([recent, lost]) == [True, False]


def test_cleanup_of_10000_obsolete_runs_of_one_partition(sink):
    """Issue 25, item 4: 10,000 obsolete runs of one monthly partition (tenant ids as long as CloudTuner's, UUIDs:
    about 95 bytes a run in a delete's text) are removed by statements no longer than ClickHouse's max_query_size;
    the current runs' rows stay."""
    tenants = [str(uuid.UUID(int=k + 1)) for k in range(10)]
    hours = [H0 + k * 3600 for k in range(250)]  # January 2026: one partition
    # hours with rows: each rerun once, the first run superseded (rows in every run table), the second current
    written = [(tenant, hour) for tenant in tenants[:2] for hour in hours[:5]]
    superseded, kept = [], []
    for tenant, hour in written:
        superseded.append(commit(sink, result_with({"a": 1.0, "b": 2.0}, tenant, hour)).run_id)
        kept.append(commit(sink, result_with({"a": 3.0}, tenant, hour)).run_id)
    failed = [RunRecord(tenant, hour, uuid.uuid4(), RunStatus.FAILED, "test", now(), now(), error="boom")
              for tenant in tenants for hour in hours for _ in range(4)][:10_000 - len(superseded)]
    sink.record(*failed)
    for run in failed[::200]:  # some failed runs wrote rows before they failed
        sink.client.insert("k8s_expenses", as_expense_columns(result_with({"x": 9.0}, run.cloud_account_id,
                                                                          run.hour).rows, run.run_id, now()),
                           column_names=EXPENSE_COLUMNS, column_oriented=True)
    views = ("k8s_expenses_current", "kubecost_metrics_current", "k8s_expenses_namespace_current",
             "k8s_nodes_hourly_current")
    before = {view: sink.query(f"SELECT * FROM {view} ORDER BY ALL") for view in views}
    assert len(before["k8s_expenses_current"]) == len(kept)

    sent: list[str] = []
    command = sink.client.command

    def watched(statement, *args, **kwargs):
        sent.append(statement)
        return command(statement, *args, **kwargs)

    sink.client.command = watched
    began = time.perf_counter()
    collected = sink.collect_garbage()
    seconds = time.perf_counter() - began
    print(f"\ncleanup of 10,000 obsolete runs in one partition: {seconds:.2f} s, {len(sent)} deletes")
    assert (collected.runs, collected.partitions) == (10_000, 1)
    deletes = [s for s in sent if s.startswith("DELETE")]
    assert deletes and max(len(s.encode()) for s in deletes) <= cleanup.MAX_DELETE_BYTES < 262_144
    for table in RUN_TABLES:
        assert sorted(r for r, in sink.query(f"SELECT DISTINCT run_id FROM {table}")) == sorted(kept), table
    assert {view: sink.query(f"SELECT * FROM {view} ORDER BY ALL") for view in views} == before
    assert sink.query("SELECT count() FROM k8s_expense_runs WHERE status = 'collected'") == [(10_000,)]
    assert sink.collect_garbage().runs == 0


def test_cleanup_batches_keep_every_statement_within_the_limit_and_every_run_once():
    runs = [(str(uuid.uuid4()), H0 + k * 3600, uuid.uuid4()) for k in range(500)]
    limit = 5_000
    batches = list(cleanup.delete_batches(runs, 202601, "prod-1", limit))
    assert [run for batch, _ in batches for run in batch] == runs and len(batches) > 1
    for batch, listed in batches:
        statements = [cleanup.delete_runs(table, 202601, "prod-1", listed) for table in RUN_TABLES]
        assert max(len(s.encode()) for s in statements) <= limit
        assert listed.count("), (") == len(batch) - 1 and str(batch[-1][2]) in listed
    # full batches: one run more would not have fitted
    first, listed = batches[0]
    one_more = cleanup.delete_runs("kubecost_metric_points_hourly", 202601, "prod-1",
                                   f"{listed[:-1]}, {cleanup.format_query_value(runs[len(first)])})")
    assert len(one_more.encode()) > limit
    with pytest.raises(ValueError, match="longer than"):
        list(cleanup.delete_batches([("t" * 6_000, H0, uuid.uuid4())], 202601, None, limit))


def test_migration_tracking_is_ordered_by_the_servers_clock(ch_url, tmp_path, worker_clocks):
    """A migration started by a process 10 minutes fast that died, then resumed by a correctly clocked one, is
    applied: the tracking rows are stamped by the server."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_a.sql").write_text("CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree ORDER BY x;")
    migration, = migrations.load_migrations(directory)

    def crash_midway(s: ClickHouseSink) -> None:
        migrations.applied_state(s.client, create=True)
        migrations._track(s.client, migration, "started")

    as_worker(ch_url, FAST, crash_midway)
    assert as_worker(ch_url, dt.timedelta(0),
                     lambda s: migrations.migrate(s.client, directory, resume=True)) == ["0001_a"]
    assert as_worker(ch_url, dt.timedelta(0), lambda s: migrations.is_up_to_date(s.client, directory))
