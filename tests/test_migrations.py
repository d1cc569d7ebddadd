"""Migrations on chDB: applied once, refused when gapped, edited or half-applied, upgrades over hours already
written (every hour still readable and equal), the ``*_current`` views equal to their old definition, retention,
idempotent files and their cluster form."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from kubecost_worker.errors import TerminalError
from kubecost_worker.hours import now, utc
from kubecost_worker.model.rows import HourResult, MetricSample
from kubecost_worker.store import migrations
from kubecost_worker.store.cleanup import delete_runs
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.store.ledger import RunRecord

from .helpers import ROOT, ch_client
from .test_store import H0, commit, result_with, sink, unfinished_run  # noqa: F401  (sink: the fixture)

pytestmark = [pytest.mark.needs_chdb]


def test_migrations_apply_once_and_twice_change_nothing(ch_url):
    with ch_client(ch_url) as client:
        first = migrations.migrate(client)
        schema = client.query("SELECT table, name, type FROM system.columns WHERE database = currentDatabase() "
                              "ORDER BY table, name").result_rows
        assert first == ["0001_k8s_expenses", "0002_k8s_expense_runs", "0003_kubecost_metrics_hourly",
                         "0004_current_views", "0005_k8s_expenses_namespace_hourly", "0006_compact_k8s_expenses",
                         "0007_backfill_namespace_rollup", "0008_kubecost_metric_points", "0009_current_views_join",
                         "0010_run_ledger_refused_collected", "0011_allocation_record", "0012_workload_rollup",
                         "0013_thanos_load", "0014_daily_resources", "0015_ledger_server_time",
                         "0016_current_run_views", "0017_focus_bill", "0018_daily_tier", "0019_reconciliation",
                         "0020_reconciled_daily_tier",
                         "0021_bill_index", "0022_reconciled_claims"]
        assert migrations.migrate(client) == []
        assert client.query("SELECT table, name, type FROM system.columns WHERE database = currentDatabase() "
                            "ORDER BY table, name").result_rows == schema
        assert migrations.is_up_to_date(client)


OLD_VIEWS = {  # the *_current views as migrations 0004 and 0006 defined them: (cloud_account_id, hour, run_id) IN
    "k8s_expenses_current": "SELECT *, total_cost FROM k8s_expenses",
    "kubecost_metrics_current": "SELECT * FROM kubecost_metrics_hourly",
    "k8s_expenses_namespace_current": "SELECT * FROM k8s_expenses_namespace_hourly",
    "k8s_nodes_hourly_current": "SELECT *, total_cost FROM k8s_nodes_hourly",  # new in 0011, the same rule
    "k8s_expenses_workload_current": "SELECT * FROM k8s_expenses_workload_hourly",  # new in 0016, the same rule
}


def test_the_current_views_equal_their_old_definition(sink):
    """Migration 0009 rewrote the views as joins (their filter reaches the run lookup): the same columns in the
    same order, the same rows, over current, superseded, failed and unfinished runs of several tenant-hours."""
    for tenant in ("t-1", "t-2"):
        for k, hour in enumerate((H0, H0 + 3600, H0 + 7200)):
            commit(sink, result_with({"a": 1.0 + k, "b": 2.0}, tenant, hour))
            commit(sink, result_with({"a": 3.0 + k, "c": 0.5}, tenant, hour))  # a rerun: supersedes the first
    unfinished_run(sink)
    failed = RunRecord.start("t-2", H0, "test").failed("boom")
    sink.record(failed)
    for view, select in OLD_VIEWS.items():
        old = (f"{select} WHERE (cloud_account_id, hour, run_id) IN "
               "(SELECT cloud_account_id, hour, run_id FROM k8s_expense_current_runs)")
        assert [c[:2] for c in sink.query(f"DESCRIBE ({old})")] == [c[:2] for c in sink.query(f"DESCRIBE {view}")]
        rows = sink.query(f"SELECT * FROM {view} ORDER BY ALL")
        assert rows == sink.query(f"SELECT * FROM ({old}) ORDER BY ALL") and rows, view
        one = f"WHERE cloud_account_id = 't-1' AND hour = toDateTime({H0 + 3600}, 'UTC') ORDER BY ALL"
        assert sink.query(f"SELECT * FROM {view} {one}") == sink.query(f"SELECT * FROM ({old}) {one}")
    pods = sink.query("SELECT cloud_account_id, toUnixTimestamp(hour), pod FROM k8s_expenses_current ORDER BY ALL")
    assert pods == [(t, h, p) for t in ("t-1", "t-2") for h in (H0, H0 + 3600, H0 + 7200) for p in ("a", "c")]


class WrittenBefore:
    """The client as the code of an older schema wrote through it: the columns the table has, tables it has (the
    code of today writes columns and tables later migrations added), and the ledger's record times, which that code
    stamped itself (the server stamps them since migration 0015)."""

    def __init__(self, client):
        self.client = client

    def insert(self, table, data, column_names, column_oriented=False, **kwargs):
        columns = dict(self.client.query("SELECT name, default_expression FROM system.columns WHERE database = "
                                         "currentDatabase() AND table = {t:String}",
                                         parameters={"t": table}).result_rows)
        have = set(columns)
        if not have:
            return None
        if table == "k8s_expense_runs" and "recorded_at" not in column_names and not columns["recorded_at"]:
            assert not column_oriented
            data, column_names = [[*row, now()] for row in data], [*column_names, "recorded_at"]
        keep = [i for i, name in enumerate(column_names) if name in have]
        data = [data[i] for i in keep] if column_oriented else [[row[i] for i in keep] for row in data]
        kwargs.pop("column_type_names", None)  # today's declared types; the table's are asked for
        return self.client.insert(table, data, column_names=[column_names[i] for i in keep],
                                  column_oriented=column_oriented, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def migrated_to(client, tmp_path, count: int) -> list[str]:
    """The schema of the first ``count`` migrations, as an installation of that version has it."""
    older = tmp_path / f"{count:04d}"
    older.mkdir()
    for path in sorted((ROOT / "migrations").glob("*.sql"))[:count]:
        shutil.copy(path, older)
    return migrations.migrate(client, older)


def written_and_rerun(sink: ClickHouseSink) -> None:
    """Three hours of t-1 in two months, each written, then rerun."""
    for k, hour in enumerate((H0, H0 + 3600, H0 + 40 * 86400)):
        commit(sink, result_with({"a": 1.0, "b": 2.0 + k}, hour=hour))
        commit(sink, result_with({"a": 1.5, "c": 0.5 + k}, hour=hour))


def test_an_upgraded_installation_keeps_every_stored_hour_visible(ch_url, tmp_path):
    """Hours written (and rerun) under migration 0009 read the same after 0010, and cleanup keeps them."""
    with ch_client(ch_url) as client:
        assert migrated_to(client, tmp_path, 9)[-1] == "0009_current_views_join"
        sink = ClickHouseSink(WrittenBefore(client))
        written_and_rerun(sink)
        snapshot = "SELECT * FROM {view} ORDER BY ALL"
        views = ("k8s_expenses_current", "kubecost_metrics_current", "k8s_expenses_namespace_current")
        before = {view: sink.query(snapshot.format(view=view)) for view in views}
        assert all(before.values()) and len(before["k8s_expenses_current"]) == 6
        assert migrated_to(client, tmp_path, 10) == ["0010_run_ledger_refused_collected"]
        assert {view: sink.query(snapshot.format(view=view)) for view in views} == before
        # and on to today's schema, which today's cleanup needs: the columns there were read the same
        old = {view: ", ".join(c for c, *_ in sink.query(f"DESCRIBE {view}")) for view in views}
        snapshot = "SELECT {columns} FROM {view} ORDER BY ALL"
        assert migrations.migrate(client) == ["0011_allocation_record", "0012_workload_rollup", "0013_thanos_load",
                                              "0014_daily_resources", "0015_ledger_server_time",
                                              "0016_current_run_views", "0017_focus_bill", "0018_daily_tier",
                                              "0019_reconciliation", "0020_reconciled_daily_tier",
                                              "0021_bill_index", "0022_reconciled_claims"]
        assert {view: sink.query(snapshot.format(view=view, columns=old[view])) for view in views} == before
        sink.collect_garbage()
        assert {view: sink.query(snapshot.format(view=view, columns=old[view])) for view in views} == before
        assert sink.query("SELECT count() FROM k8s_expenses") == [(6,)]


def test_an_installation_at_0014_upgrades_with_every_hour_readable_and_equal(ch_url, tmp_path):
    """Hours written under 0014 (rerun, failed, unfinished runs beside them) read the same in every view after the
    upgrade to today's schema, the views new since show them, and cleanup keeps them."""
    with ch_client(ch_url) as client:
        assert migrated_to(client, tmp_path, 14)[-1] == "0014_daily_resources"
        sink = ClickHouseSink(WrittenBefore(client))
        written_and_rerun(sink)
        unfinished_run(sink)
        sink.record(RunRecord.start("t-1", H0 + 3600, "test").failed("boom"))
        views = [v for v, in sink.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                        "AND engine = 'View' ORDER BY name")]
        assert len(views) == 8

        columns = {view: ", ".join(c for c, *_ in sink.query(f"DESCRIBE {view}")) for view in views}

        def snapshot() -> dict[str, list]:  # the columns of 0014: views gained columns since
            return {view: sink.query(f"SELECT {columns[view]} FROM {view} ORDER BY ALL") for view in views}

        before = snapshot()
        assert all(before.values()) and len(before["k8s_expenses_current"]) == 6
        assert migrations.migrate(client) == ["0015_ledger_server_time", "0016_current_run_views", "0017_focus_bill",
                                              "0018_daily_tier", "0019_reconciliation",
                                              "0020_reconciled_daily_tier",
                                              "0021_bill_index", "0022_reconciled_claims"]
        assert snapshot() == before
        workload = sink.query("SELECT * FROM k8s_expenses_workload_current ORDER BY ALL")
        assert workload == sink.query(
            "SELECT * FROM k8s_expenses_workload_hourly WHERE (cloud_account_id, hour, run_id) IN "
            "(SELECT cloud_account_id, hour, run_id FROM k8s_expense_current_runs) ORDER BY ALL") and workload
        assert ClickHouseSink(client).collect_garbage().runs == 4
        assert snapshot() == before
        assert sink.query("SELECT * FROM k8s_expenses_workload_current ORDER BY ALL") == workload


def _write(directory, files: dict[str, str]):
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def test_runner_refuses_gaps_changes_and_half_applied_state(ch_url, tmp_path):
    ok = "CREATE TABLE IF NOT EXISTS t{n} (a UInt8) ENGINE = MergeTree ORDER BY a;"
    gap = _write(tmp_path / "gap", {"0001_a.sql": ok.format(n=1), "0003_c.sql": ok.format(n=3)})
    with pytest.raises(TerminalError, match="gap"):
        migrations.load_migrations(gap)
    good = _write(tmp_path / "good", {"0001_a.sql": ok.format(n=1), "0002_b.sql": ok.format(n=2)})
    with ch_client(ch_url) as client:
        assert migrations.migrate(client, good) == ["0001_a", "0002_b"]
        (good / "0002_b.sql").write_text(ok.format(n=2) + "\n-- edited")
        with pytest.raises(TerminalError, match="changed after it was applied"):
            migrations.migrate(client, good)
        (good / "0002_b.sql").write_text(ok.format(n=2))
        # a crash between 'started' and 'applied'
        (good / "0003_c.sql").write_text(ok.format(n=3))
        m3 = migrations.load_migrations(good)[2]
        migrations._track(client, m3, "started")
        with pytest.raises(TerminalError, match="started but never finished"):
            migrations.migrate(client, good)
        assert not migrations.is_up_to_date(client, good)
        assert migrations.migrate(client, good, resume=True) == ["0003_c"]
        assert migrations.migrate(client, good) == []
        (good / "0002_b.sql").unlink()
        with pytest.raises(TerminalError):
            migrations.migrate(client, good)


def test_retention_sets_a_ttl_on_every_daily_table_and_none_on_the_hourly(sink):
    """The hourly tables' hours expire by the scheduler, each day sealed first (tests/test_store_days.py)."""
    assert migrations.apply_retention(sink.client, 0) == []
    assert migrations.apply_retention(sink.client, 90) == list(migrations.DAILY_TABLES)
    assert migrations.apply_retention(sink.client, 90) == []  # twice: the same
    for table in migrations.DAILY_TABLES:
        (ddl,), = sink.query(f"SHOW CREATE TABLE {table}")
        assert "TTL day + toIntervalDay(90)" in ddl, table
    for table in migrations.RETAINED_TABLES:
        (ddl,), = sink.query(f"SHOW CREATE TABLE {table}")
        assert " TTL " not in ddl, table


IDEMPOTENT_DDL = re.compile(r"^(CREATE (TABLE|VIEW|MATERIALIZED VIEW) IF NOT EXISTS|CREATE OR REPLACE VIEW) "
                            r"|^ALTER TABLE \w+\s+(MODIFY COLUMN IF EXISTS|ADD COLUMN IF NOT EXISTS) [^;]*$"
                            r"|^ALTER TABLE \w+_mv MODIFY QUERY\s+SELECT "
                            # a projection: added if missing; built again for every part (the same result)
                            r"|^ALTER TABLE \w+\s+(ADD PROJECTION IF NOT EXISTS|MATERIALIZE PROJECTION) ")

# A backfill skips what its target already holds: INSERT INTO t ... NOT IN (SELECT ... FROM t).
GUARDED_BACKFILL = re.compile(r"^INSERT INTO (\w+)\b.*\bNOT IN\s*\(SELECT [\w, ]+ FROM \1\)", re.S)


def test_migration_files_are_idempotent():
    """Each statement creates if missing, states a definition, or inserts only what is missing (applying it
    twice is applying it once)."""
    for migration in migrations.load_migrations(ROOT / "migrations"):
        for statement in migration.statements:
            assert IDEMPOTENT_DDL.match(statement) or GUARDED_BACKFILL.match(statement), \
                (migration.name, statement[:80])
            if statement.startswith("ALTER") and " MODIFY QUERY" not in statement and " PROJECTION " not in statement:
                # every clause a MODIFY COLUMN IF EXISTS or ADD COLUMN IF NOT EXISTS: no DROP, no data change
                clauses = re.split(r",\s*(?=MODIFY|ADD)", statement.split(None, 3)[3])
                assert all(c.startswith(("MODIFY COLUMN IF EXISTS ", "ADD COLUMN IF NOT EXISTS ")) for c in clauses), \
                    (migration.name, clauses)


def test_upgrading_fills_the_rollup_and_the_metric_points_of_hours_written_before(ch_url, tmp_path):
    """Hours written under migration 0004 (no rollup, no joined points) read the same after the upgrade as hours
    written after it; the backfills run again add nothing, and a repeated points text is read once."""
    from kubecost_worker.read import metroculus

    labels = [{"daemonset": "true"}, {"daemonset": "false", "node": "n1"}]

    def hour_with(pods: dict[str, float], hour: int) -> HourResult:
        result = result_with(pods, hour=hour)
        samples = [MetricSample("t-1", hour, metric, labels[i % 2], 0.5 + i, 60)
                   for i, metric in enumerate(["kubecost_node_is_spot"] * 2 + list(metroculus.SAVINGS.values()))]
        return HourResult(result.rows, samples, samples_seen=1, unpriced_nodes=[])

    with ch_client(ch_url) as client:
        assert migrated_to(client, tmp_path, 4)[-1] == "0004_current_views"
        sink = ClickHouseSink(WrittenBefore(client))
        commit(sink, hour_with({"a": 1.0, "b": 2.0}, H0))
        commit(sink, hour_with({"c": 3.0}, H0 + 3600))
        assert migrations.migrate(client)[-16:] == ["0007_backfill_namespace_rollup", "0008_kubecost_metric_points",
                                                    "0009_current_views_join", "0010_run_ledger_refused_collected",
                                                    "0011_allocation_record", "0012_workload_rollup",
                                                    "0013_thanos_load", "0014_daily_resources",
                                                    "0015_ledger_server_time", "0016_current_run_views",
                                                    "0017_focus_bill", "0018_daily_tier", "0019_reconciliation",
                                                    "0020_reconciled_daily_tier",
                                                    "0021_bill_index", "0022_reconciled_claims"]
        sink = ClickHouseSink(client)
        commit(sink, hour_with({"a": 0.5}, H0))  # a rerun replaces what the backfills wrote too
        commit(sink, hour_with({"d": 4.0}, H0 + 7200))  # after the upgrade: through the materialized views

        start, end = H0, H0 + 3 * 3600
        (total,), = sink.query("SELECT sum(total_cost) FROM k8s_expenses_current")
        assert total == 7.5 and metroculus.cluster_costs(sink, "t-1", start, end)["total_cost"] == total
        texts = sink.query("SELECT metric, point_json FROM kubecost_metrics_current ORDER BY metric, hour, point_json")
        expected = {m: [json.loads(text) for metric, text in texts if metric == m] for m, _ in texts}

        def read() -> dict:
            return json.loads(b"".join(metroculus.kubecost_metrics(sink, "t-1", start, end, None)))

        assert read() == expected and len(expected["kubecost_node_is_spot"]) == 6
        rollup = "SELECT * FROM k8s_expenses_namespace_hourly ORDER BY ALL"
        points = "SELECT * FROM kubecost_metric_points_hourly ORDER BY ALL"
        before = sink.query(rollup), sink.query(points)
        for migration in migrations.load_migrations(ROOT / "migrations")[6:]:  # as `migrate --resume` would
            for statement in migration.statements:
                if statement.startswith("INSERT"):
                    client.command(statement)
        assert (sink.query(rollup), sink.query(points)) == before
        client.command("INSERT INTO kubecost_metric_points_hourly SELECT * FROM kubecost_metric_points_hourly "
                       "WHERE hour = {h:DateTime('UTC')}", parameters={"h": utc(H0)})  # a backfill racing a write
        assert read() == expected


def test_cluster_mode_renders_replicated_local_tables_distributed_tables_and_on_cluster_views(sink):
    from kubecost_worker.store.cluster import local_table, render

    statements = [s for m in migrations.load_migrations(ROOT / "migrations") for s in m.statements]
    projections = [s for s in statements if " PROJECTION " in s.split("\n")[0]]
    tables = [s for s in statements if s.startswith(("CREATE TABLE", "ALTER TABLE")) and " MODIFY QUERY" not in s
              and s not in projections]
    rendered = [r for s in statements for r in render(s, "prod-1")]
    assert len(rendered) == len(statements) + len(tables)  # each table (and change): local and Distributed
    assert projections and all(r.startswith("ALTER TABLE focus_bill_local ON CLUSTER `prod-1` ")
                               for s in projections for r in render(s, "prod-1"))  # parts are the local tables'
    index = next(r for r in rendered if r.startswith("CREATE TABLE IF NOT EXISTS focus_bill_resources_local "))
    assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/focus_bill_resources_local'" \
        in index
    backfills = [r for r in rendered if r.startswith("INSERT")]  # INSERT has no ON CLUSTER: every shard at once
    assert len(backfills) == 5 and all(r.endswith(
        "SETTINGS parallel_distributed_insert_select = 2, distributed_product_mode = 'local', "
        "insert_distributed_sync = 1") for r in backfills)
    assert all(" ON CLUSTER `prod-1` " in r for r in rendered if r not in backfills)
    for name in ("k8s_expenses", "k8s_expense_runs", "kubecost_metrics_hourly", "k8s_expenses_namespace_hourly",
                 "k8s_nodes_hourly"):
        local = next(r for r in rendered if r.startswith(f"CREATE TABLE IF NOT EXISTS {name}_local "))
        assert f"ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{{database}}/{name}_local', '{{replica}}')" in local
        assert "PARTITION BY toYYYYMM(hour)" in local and "ORDER BY (cloud_account_id, " in local
        distributed = next(r for r in rendered if r.startswith(f"CREATE TABLE IF NOT EXISTS {name} "))
        assert distributed.endswith(f"ENGINE = Distributed(`prod-1`, currentDatabase(), {name}_local, "
                                    "cityHash64(cloud_account_id))")  # a tenant's rows and ledger on one shard
    rollup_mv, points_mv, workload_mv, daily_mv = [r for r in rendered if "MATERIALIZED VIEW" in r]
    assert "TO k8s_expenses_namespace_by_day_local AS" in daily_mv and "FROM k8s_expenses_by_day_local AS d" in daily_mv
    assert "TO k8s_expenses_namespace_hourly_local AS" in rollup_mv and "FROM k8s_expenses_local" in rollup_mv
    assert "TO kubecost_metric_points_hourly_local AS" in points_mv and "FROM kubecost_metrics_hourly_local" in points_mv
    assert "TO k8s_expenses_workload_hourly_local AS" in workload_mv and "FROM k8s_expenses_local AS e" in workload_mv
    new_query, = [r for r in rendered if " MODIFY QUERY" in r]  # 0011: the rollup's view, still over the local table
    assert new_query.startswith("ALTER TABLE k8s_expenses_namespace_hourly_mv ON CLUSTER `prod-1` MODIFY QUERY\nSELECT")
    assert "FROM k8s_expenses_local AS e\n" in new_query and "FROM k8s_expenses " not in new_query
    views = [r for r in rendered if r.startswith(("CREATE VIEW", "CREATE OR REPLACE VIEW"))]
    assert len(views) == 34 and all(v.endswith("SETTINGS distributed_product_mode = 'local'") for v in views)
    for name in ("k8s_day_builds", "k8s_expenses_by_day", "k8s_nodes_by_day", "k8s_expenses_namespace_by_day"):
        local = next(r for r in rendered if r.startswith(f"CREATE TABLE IF NOT EXISTS {name}_local "))
        assert "ReplicatedMergeTree(" in local and "PARTITION BY toYYYYMM(day)" in local
        distributed = next(r for r in rendered if r.startswith(f"CREATE TABLE IF NOT EXISTS {name} "))
        assert distributed.endswith(f"{name}_local, cityHash64(cloud_account_id))")
    from kubecost_worker.store.cleanup import delete_listed
    assert delete_listed("k8s_expenses", 202601, "prod-1", "(('t', '2026-01-01'))", "(cloud_account_id, toDate(hour))",
                         rewrite=True) == (  # expiry: a mutation of the local tables
        "ALTER TABLE k8s_expenses_local ON CLUSTER `prod-1` DELETE IN PARTITION 202601 "
        "WHERE (cloud_account_id, toDate(hour)) IN (('t', '2026-01-01'))")
    ledger = [r for r in rendered if "'refused' = 5" in r]
    assert [r.split(" ON ")[0] for r in ledger] == ["ALTER TABLE k8s_expense_runs_local", "ALTER TABLE k8s_expense_runs"]
    assert delete_runs("k8s_expenses", 202601, "prod-1", "(('t', 1, 'r'))") == (  # cleanup: the local tables
        "DELETE FROM k8s_expenses_local ON CLUSTER `prod-1` IN PARTITION 202601 "
        "WHERE (cloud_account_id, hour, run_id) IN (('t', 1, 'r'))")
    stamped = [r for r in rendered if "recorded_at DateTime64(6, 'UTC') DEFAULT now64(6)" in r]  # 0015: both tables
    assert [r.split(" ON ")[0] for r in stamped] == ["ALTER TABLE k8s_expense_runs_local",
                                                     "ALTER TABLE k8s_expense_runs"]
    codecs = [r for r in rendered if r.startswith(("ALTER TABLE k8s_expenses ", "ALTER TABLE k8s_expenses_local "))
              and "CODEC" in r]
    assert len(codecs) == 2 and all(c.startswith("ALTER TABLE k8s_expenses_local ON CLUSTER") for c in codecs)  # local
    reconciled = [r for r in rendered if "ADD COLUMN IF NOT EXISTS cpu_cost_reconciled" in r]  # 0020: both
    assert [r.split(" ON ")[0] for r in reconciled] == ["ALTER TABLE k8s_expenses_by_day_local",
                                                        "ALTER TABLE k8s_expenses_by_day"]
    assert "CODEC" in reconciled[0] and "CODEC" not in reconciled[1] and "DEFAULT cpu_cost," in reconciled[1]
    added = [r for r in rendered if "ADD COLUMN IF NOT EXISTS pod_uid" in r][:2]  # 0011: both, the codec on the data
    assert [r.split(" ON ")[0] for r in added] == ["ALTER TABLE k8s_expenses_local", "ALTER TABLE k8s_expenses"]
    assert "CODEC" in added[0] and "CODEC" not in added[1]
    alias = [r for r in rendered if "ALIAS cpu_cost + ram_cost + gpu_cost + pv_cost" in r]
    assert [r.split(" ON ")[0] for r in alias] == ["ALTER TABLE k8s_expenses_local", "ALTER TABLE k8s_expenses"]
    assert [r for s in statements for r in render(s, None)] == statements  # without a cluster: unchanged
    assert render(migrations.TRACKING_DDL.strip(), "prod-1")[1].endswith("schema_migrations_local, rand())")
    assert local_table("k8s_expenses", "prod-1") == "k8s_expenses_local ON CLUSTER `prod-1`"
    assert local_table("k8s_expenses", None) == "k8s_expenses"
    for backfill in backfills:  # the settings exist (on one node they change nothing)
        sink.client.command(backfill)
    with pytest.raises(ValueError):
        render("DROP TABLE x", "prod-1")  # no cluster form: refused, not run on one node
