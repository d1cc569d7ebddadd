"""The store on chDB, through the same clickhouse-connect code path a server uses: a run's rows written and
committed (the ledger's commit deadline), reruns replacing an hour exactly, cleanup of obsolete runs, ClickHouse's
failures classified."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from kubecost_worker.errors import TerminalError, TransientError
from kubecost_worker.hours import now, utc
from kubecost_worker.model.rows import ExpenseRow, HourResult, MetricSample, NodeRow, VolumeRow
from kubecost_worker.store import migrations
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.store.cleanup import RUN_TABLES
from kubecost_worker.store.client import connect
from kubecost_worker.store.ledger import COMMIT_DEADLINE, STALE_RUN, CurrentRun, RunRecord, RunStatus
from kubecost_worker.store.writer import (EXPENSE_COLUMNS, METRIC_COLUMNS, NODE_COLUMNS, as_expense_columns,
                                          as_metric_columns)

from .helpers import ch_client

pytestmark = [pytest.mark.needs_chdb]


H0 = 1_767_225_600


def result_with(pods: dict[str, float], tenant="t-1", hour=H0) -> HourResult:
    rows = [ExpenseRow(tenant, "c1", hour, "default", "deployment", "api", pod, "n1", cpu_cost=cost,
                       cpu_core_hours=1.0, labels={"team": "a"}) for pod, cost in pods.items()]
    samples = [MetricSample(tenant, hour, "kubecost_savings_cpu_allocation", {"daemonset": "false"}, 1.5, 60)]
    # the node's row says what the run saw: its cost is the sum of the pods', so a rerun's shows in it
    nodes = [NodeRow(tenant, "c1", hour, "n1", cpu_cost=sum(pods.values()), allocated_cost=sum(pods.values()))]
    volumes = [VolumeRow(tenant, "c1", hour, "pv-1", provider_id="vol-1", running_minutes=60.0, cost=0.0)]
    return HourResult(rows, samples, samples_seen=100, unpriced_nodes=[], nodes=nodes, volumes=volumes)


def commit(sink: ClickHouseSink, result: HourResult) -> RunRecord:
    tenant, hour = result.rows[0].cloud_account_id, result.rows[0].hour
    run = RunRecord.start(tenant, hour, "test")
    sink.record(run)
    return sink.write_hour(run, result)


def unfinished_run(sink: ClickHouseSink) -> None:
    """A run that inserted a row of t-1's first hour and died before its commit."""
    unfinished = RunRecord.start("t-1", H0, "test")
    sink.record(unfinished)
    sink.client.insert("k8s_expenses", [["t-1", "c1", utc(H0), "default", "deployment", "api", "ghost", "n1", 9.0,
                                         unfinished.run_id]],
                       column_names=["cloud_account_id", "cluster_id", "hour", "namespace", "workload_kind",
                                     "workload_name", "pod", "node", "cpu_cost", "run_id"])


@pytest.fixture
def sink(ch_url):
    with ch_client(ch_url) as client:
        migrations.migrate(client)
        yield ClickHouseSink(client)


def current(sink, tenant="t-1"):
    return sorted(sink.query("SELECT pod, cpu_cost FROM k8s_expenses_current WHERE cloud_account_id = {t:String}",
                             {"t": tenant}))


def test_schema_matches_what_the_code_inserts(sink):
    columns = {(t, c) for t, c in sink.query("SELECT table, name FROM system.columns WHERE database = currentDatabase()")}
    assert {("k8s_expenses", c) for c in EXPENSE_COLUMNS} <= columns
    assert {("kubecost_metrics_hourly", c) for c in METRIC_COLUMNS} <= columns
    assert {("k8s_expenses_current", c) for c in EXPENSE_COLUMNS} <= columns
    assert {(t, c) for t in ("k8s_nodes_hourly", "k8s_nodes_hourly_current") for c in NODE_COLUMNS} <= columns
    done = commit(sink, result_with({"a": 1.25}))
    row = sink.query("SELECT * FROM k8s_expenses_current")
    assert len(row) == 1 and done.rows_written == 1 and done.total_cost == pytest.approx(1.25)
    stored = dict(zip([c for c, in sink.query("SELECT name FROM system.columns WHERE table = 'k8s_expenses_current' "
                                               "AND database = currentDatabase() ORDER BY position")], row[0]))
    assert stored["labels"] == {"team": "a"} and stored["total_cost"] == pytest.approx(1.25)
    assert sink.query("SELECT metric, value, labels FROM kubecost_metrics_current") == [
        ("kubecost_savings_cpu_allocation", 1.5, {"daemonset": "false"})]


def test_rerun_replaces_rows_exactly_and_cleanup_leaves_no_stale_rows(sink):
    commit(sink, result_with({"a": 1.0, "b": 2.0, "c": 3.0}))
    commit(sink, result_with({"a": 1.0, "b": 2.0, "c": 3.0}))
    assert current(sink) == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    commit(sink, result_with({"a": 1.5}))  # the rerun found fewer pods
    assert current(sink) == [("a", 1.5)]
    # the commit deleted nothing: the superseded runs are underneath, invisible, until cleanup
    assert sink.query("SELECT count() FROM k8s_expenses") == [(7,)]
    assert sink.query("SELECT sum(rows) FROM k8s_expenses_namespace_current") == [(1,)]
    assert sink.collect_garbage().runs == 2
    assert sink.query("SELECT count() FROM k8s_expenses") == [(1,)]
    assert sink.query("SELECT namespace, rows, total_cost FROM k8s_expenses_namespace_hourly") == [("default", 1, 1.5)]
    assert sink.query("SELECT count() FROM kubecost_metrics_hourly") == [(1,)]
    assert sink.query("SELECT count() FROM kubecost_metric_points_hourly") == [(1,)]
    assert sink.query("SELECT node, cpu_cost FROM k8s_nodes_hourly") == [("n1", 1.5)]  # the nodes of the rerun
    assert current(sink) == [("a", 1.5)]
    assert sink.collect_garbage().runs == 0  # the runs removed are recorded 'collected': not looked at again
    assert sink.query("SELECT count() FROM k8s_expense_runs WHERE status = 'collected'") == [(2,)]


def test_a_batch_of_runs_is_one_insert_per_table_and_each_commits_alone(sink):
    """The hours of a batch share their inserts and their ledger write; a run past its deadline is not committed
    and fails alone, its rows invisible, while the others commit."""
    def inserts() -> int:  # each insert makes a part
        return sink.query("SELECT count() FROM system.parts WHERE database = currentDatabase() "
                          "AND table = 'k8s_expenses' AND active")[0][0]

    sink.client.command("SYSTEM STOP MERGES k8s_expenses")

    late = dataclasses.replace(RunRecord.start("t-1", H0 + 7200, "test"), started_at=now() - COMMIT_DEADLINE)
    runs = [RunRecord.start("t-1", H0, "test"), RunRecord.start("t-1", H0 + 3600, "test"), late]
    sink.record(*runs)
    before = inserts()
    ended = sink.write_hours([(run, result_with({"a": 1.0 + k}, hour=run.hour), 10) for k, run in enumerate(runs)])
    assert inserts() == before + 1
    assert [e.status for e in ended[:2]] == [RunStatus.SUCCEEDED] * 2 and isinstance(ended[2], TransientError)
    assert sorted(sink.query("SELECT toUnixTimestamp(hour), cpu_cost FROM k8s_expenses_current")) == [
        (H0, 1.0), (H0 + 3600, 2.0)]
    assert sink.current_runs("t-1", [H0, H0 + 3600, H0 + 7200]) == {
        H0: CurrentRun(runs[0].run_id, 10, 1), H0 + 3600: CurrentRun(runs[1].run_id, 10, 1)}


def test_rows_of_an_unfinished_run_are_invisible(sink):
    commit(sink, result_with({"a": 1.0}))
    crashed = RunRecord.start("t-1", H0, "test")
    sink.record(crashed)
    # the process dies after inserting its rows, before recording success
    sink.client.insert("k8s_expenses",
                       as_expense_columns(result_with({"a": 9.0, "z": 9.0}).rows, crashed.run_id, now()),
                       column_names=EXPENSE_COLUMNS, column_oriented=True)
    assert current(sink) == [("a", 1.0)]
    commit(sink, result_with({"a": 2.0}))
    assert current(sink) == [("a", 2.0)]


def test_abandoned_runs_are_removed_once_stale(sink):
    commit(sink, result_with({"a": 1.0}))
    crashed = RunRecord.start("t-1", H0, "test")
    sink.record(crashed)
    sink.client.insert("k8s_expenses", as_expense_columns(result_with({"a": 9.0}).rows, crashed.run_id, now()),
                       column_names=EXPENSE_COLUMNS, column_oriented=True)
    assert sink.collect_garbage().runs == 0  # recent: maybe another consumer is still writing it
    assert sink.query("SELECT count() FROM k8s_expenses") == [(2,)]
    assert sink.collect_garbage(stale_after=dt.timedelta(0)).runs == 1
    assert sink.query("SELECT count() FROM k8s_expenses") == [(1,)] and current(sink) == [("a", 1.0)]
    # a run that old may not commit any more: cleanup may have removed its rows meanwhile
    late = dt.datetime.now(dt.timezone.utc) - STALE_RUN
    old = RunRecord("t-1", H0, uuid.uuid4(), RunStatus.RUNNING, "test", started_at=late)
    with pytest.raises(TransientError, match="may not commit"):
        sink.write_hour(old, result_with({"a": 5.0}))
    assert current(sink) == [("a", 1.0)]


def test_cleanup_is_one_delete_per_table_and_partition_whatever_the_number_of_runs(sink):
    """Reruns of hours in two months: one cleanup removes every superseded run's rows with one lightweight delete
    per table and monthly partition, keeps each hour's current run, and touches only hours changed since."""
    january, february = H0, H0 + 31 * 86400
    hours = [january + k * 3600 for k in range(4)] + [february + k * 3600 for k in range(4)]
    for hour in hours:
        for rerun in range(3):
            commit(sink, result_with({"a": 1.0 + rerun, "b": 2.0}, hour=hour))
    mutations = "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = {t:String}"
    before = {t: sink.query(mutations, {"t": t})[0][0] for t in RUN_TABLES}
    collected = sink.collect_garbage()
    assert (collected.runs, collected.partitions) == (2 * len(hours), 2)
    assert {t: sink.query(mutations, {"t": t})[0][0] - before[t] for t in RUN_TABLES} == {t: 2 for t in RUN_TABLES}
    assert sink.query("SELECT count(), sum(cpu_cost) FROM k8s_expenses") == [(2 * len(hours), 5.0 * len(hours))]
    assert sink.query("SELECT count() FROM k8s_expenses_current") == [(2 * len(hours),)]

    marker = sink.query("SELECT now64(6, 'UTC')")[0][0]
    time.sleep(0.01)
    commit(sink, result_with({"a": 7.0}, hour=hours[-1]))
    commit(sink, result_with({"a": 7.0}, hour=hours[0]))
    assert sink.collect_garbage(since=marker).runs == 2
    assert sink.query("SELECT count() FROM k8s_expenses") == [(2 * len(hours) - 2,)]
    assert sink.collect_garbage().runs == 0


def test_tenants_and_hours_are_independent(sink):
    commit(sink, result_with({"a": 1.0}, tenant="t-1"))
    commit(sink, result_with({"b": 2.0}, tenant="t-2"))
    commit(sink, result_with({"c": 3.0}, tenant="t-1", hour=H0 + 3600))
    commit(sink, result_with({"d": 4.0}, tenant="t-2"))
    assert current(sink, "t-1") == [("a", 1.0), ("c", 3.0)]
    assert current(sink, "t-2") == [("d", 4.0)]


def test_total_cost_computed_on_read_is_the_models_sum(sink):
    """Migration 0006 made total_cost an ALIAS: the same additions in the same order, so the same doubles."""
    migrations.migrate(sink.client)
    rows = [ExpenseRow("t", "c", 0, "ns", "deployment", "w", f"p{i}", "n", cpu_cost=0.1 * i, ram_cost=1 / 3,
                       gpu_cost=1e-17, pv_cost=0.7, network_cost=0.2 / 7, lb_cost=1e-9 * i, management_cost=0.3)
             for i in range(50)]
    run = RunRecord.start("t", 0, "test")
    sink.record(run)
    sink.write_hour(run, HourResult(rows, [], samples_seen=0, unpriced_nodes=[]))
    stored = dict(sink.query("SELECT pod, total_cost FROM k8s_expenses_current"))
    assert stored == {row.pod: row.total_cost for row in rows}


def test_a_run_split_over_insert_blocks_reads_every_point_once(sink):
    """A very large run's samples may reach the points view in several blocks: one text per block, each point
    read once, the hour's points still in order when the blocks hold consecutive texts."""
    from kubecost_worker.read import metroculus

    samples = [MetricSample("t-1", H0, "kubecost_node_is_spot", {"node": f"n{i}"}, float(i), 60) for i in range(6)]
    run = RunRecord.start("t-1", H0, "test")
    sink.record(run)
    for block in (samples[:3], samples[3:]):
        sink.client.insert("kubecost_metrics_hourly", as_metric_columns(block, run.run_id), column_names=METRIC_COLUMNS,
                           column_oriented=True)
    sink.write_hour(run, HourResult(result_with({"a": 1.0}).rows, [], samples_seen=1, unpriced_nodes=[]))
    assert sink.query("SELECT count() FROM kubecost_metric_points_hourly") == [(2,)]
    points = json.loads(b"".join(metroculus.kubecost_metrics(sink, "t-1", H0, H0 + 3600, None)))["kubecost_node_is_spot"]
    assert [p["labels"]["node"] for p in points] == [f"n{i}" for i in range(6)]


def test_a_chdb_path_locked_by_another_process_is_a_transient_error(tmp_path):
    url = f"chdb://{tmp_path / 'locked'}"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from kubecost_worker.store.client import connect
        client = connect({url!r}); client.command("SELECT 1")
        print("open", flush=True); time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(TransientError, match="ClickHouse"):
            connect(url).command("SELECT 1")
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.2)
    with ch_client(url) as client:  # free again once the other process is gone
        assert client.command("SELECT 1") == 1


def test_a_process_that_writes_does_not_import_pandas(tmp_path):
    """clickhouse-connect would import pandas on a process's first insert to ask whether the data is a DataFrame:
    0.4-0.7 s of CPU in every run that writes. The store's inserts are lists, and the rows land all the same."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from kubecost_worker.store.client import connect, insert, query
        client = connect({f"chdb://{tmp_path / 'db'}"!r})
        client.command("CREATE TABLE t (hour UInt32, cost Float64) ENGINE = MergeTree ORDER BY hour")
        client.insert("t", [[1, 0.5], [2, 1.5]], column_names=["hour", "cost"], column_type_names=["UInt32", "Float64"])
        print(query(client, "SELECT sum(cost) FROM t")[0][0], "pandas" in sys.modules)
    """)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2.0", "False"]


@pytest.mark.parametrize("message, kind", [
    ("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)", TransientError),
    ("Code: 252. DB::Exception: Too many parts (3001). (TOO_MANY_PARTS)", TransientError),
    ("Code: 60. DB::Exception: Unknown table expression identifier 'k8s_expenses'. (UNKNOWN_TABLE)", TerminalError),
])
def test_clickhouse_errors_are_classified_by_their_code(message, kind):
    """A full disk passes (merges, TTLs and the operator free it): retried, never dead-lettered as terminal."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    from kubecost_worker.store.client import classified

    with pytest.raises(kind) as raised:
        with classified("inserting"):
            raise DatabaseError(message)
    assert "while inserting" in str(raised.value)
    assert kind is TerminalError or not isinstance(raised.value, TerminalError)


def test_clickhouse_server_via_testcontainers():
    docker = pytest.importorskip("docker")
    try:
        docker.from_env(timeout=2).ping()
    except Exception as exc:  # no Docker engine on this machine
        pytest.skip(f"no Docker engine to run a ClickHouse server container: {type(exc).__name__}")
    from testcontainers.community.clickhouse import ClickHouseContainer  # pragma: no cover

    with ClickHouseContainer("clickhouse/clickhouse-server:24.8") as server:  # pragma: no cover
        url = f"http://{server.username}:{server.password}@{server.get_container_host_ip()}:" \
              f"{server.get_exposed_port(8123)}/{server.dbname}"
        client = connect(url)
        migrations.migrate(client)
        commit(ClickHouseSink(client), result_with({"a": 1.0}))
        assert ClickHouseSink(client).query("SELECT pod, cpu_cost FROM k8s_expenses_current") == [("a", 1.0)]


def test_shutil_available():
    assert shutil.which("promtool"), "promtool is needed by the end-to-end tests: apt-get install prometheus"
