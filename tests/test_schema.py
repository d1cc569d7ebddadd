"""The schema declared once (``kubecost_worker/store/schema/``): every migration applied to an empty store leaves each
table and view as its declaration creates it, a fresh install and an upgrade leave the same objects, the current-run
rule is written once, and what the sink writes is what the tables declare.

Objects are compared by ClickHouse's own ``SHOW CREATE`` of each, the database's name taken out: both sides are
formatted by ClickHouse, so a declaration keeps the layout that reads best."""

from __future__ import annotations

import dataclasses
import re

import pytest

from kubecost_worker.model.rows import ExpenseRow, NodeRow, VolumeRow
from kubecost_worker.store import bill, cleanup, days, ledger, migrations, schema, writer
from kubecost_worker.store.cluster import render

from .helpers import ROOT, ch_client

MIGRATED, DECLARED, UPGRADED = "schema_migrated", "schema_declared", "schema_upgraded"
RULE = "argMax(run_id, recorded_at)"


def use(client, database: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.database = database


def objects(client, database: str) -> dict[str, str]:
    """name -> ``SHOW CREATE`` of each table and view of ``database``, without the database's name."""
    names = client.query("SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
                         parameters={"db": database}).result_rows
    return {name: client.query(f"SHOW CREATE TABLE {database}.{name}").result_rows[0][0].replace(f"{database}.", "")
            for name, in names}


def creation_order() -> list[str]:
    """Every declared object after the objects its statement names."""
    statements, ordered = schema.declarations(), []

    def visit(name: str) -> None:
        for other in statements:
            if other != name and other not in ordered and re.search(rf"\b{other}\b", statements[name]):
                visit(other)
        if name not in ordered:
            ordered.append(name)

    for name in statements:
        visit(name)
    return ordered


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One chDB with the migrations applied in one database and the declarations created in another."""
    with ch_client(f"chdb://{tmp_path_factory.mktemp('schema') / 'clickhouse'}") as client:
        use(client, MIGRATED)
        migrations.migrate(client)
        use(client, DECLARED)
        for name in creation_order():
            client.command(schema.as_installed(schema.declaration(name)))
        yield client


@pytest.mark.needs_chdb
def test_the_migrations_leave_every_object_as_declared(store):
    migrated, declared = objects(store, MIGRATED), objects(store, DECLARED)
    assert sorted(migrated) == sorted(declared) == sorted(schema.declarations())
    for name, created in declared.items():
        assert migrated[name] == created, name


@pytest.mark.needs_chdb
def test_the_declared_column_types_are_the_servers(store):
    """Inserts send the declared types (``schema.type_names``) instead of asking the server: they must be the types
    the migrations leave."""
    for table in schema.tables():
        names = [c.name for c in schema.columns(table)]
        found = dict(store.query("SELECT name, type FROM system.columns WHERE database = {db:String} "
                                 "AND table = {t:String}", parameters={"db": MIGRATED, "t": table}).result_rows)
        assert schema.type_names(table, names) == [found[name] for name in names], table


@pytest.mark.needs_chdb
def test_a_fresh_install_and_an_upgrade_from_0009_leave_the_same_objects(store, tmp_path):
    from .test_migrations import migrated_to

    use(store, UPGRADED)
    assert migrated_to(store, tmp_path, 9)[-1] == "0009_current_views_join"
    assert migrations.migrate(store)[0] == "0010_run_ledger_refused_collected"
    assert objects(store, UPGRADED) == objects(store, MIGRATED)


@pytest.mark.needs_chdb
def test_the_current_run_rule_is_written_once_and_installed_inline(store):
    """Only k8s_expense_current_runs states the rule; every view of current data names it, and is installed with the
    rule in the place of the name (a view named in a join is planned as a query of its own)."""
    stating = [name for name, statement in schema.declarations().items() if RULE in statement]
    assert stating == [schema.CURRENT_RUNS]
    added = [m for m in migrations.load_migrations(ROOT / "migrations") if m.version >= 16]
    assert added and not [m.name for m in added if RULE in m.sql]
    joining = [name for name, statement in schema.declarations().items()
               if f"JOIN {schema.CURRENT_RUNS} AS" in statement]
    assert len(joining) == 9  # k8s_volumes_hourly_current and k8s_expenses_reconciled_current among them
    installed = objects(store, MIGRATED)
    for name in joining:
        assert RULE in installed[name] and f"JOIN {schema.CURRENT_RUNS}" not in installed[name], name


@pytest.mark.needs_chdb
def test_the_current_build_rule_is_written_once_and_installed_inline(store):
    """Only k8s_day_current_builds states which build of a day readers see; the views of the daily tier name it and
    are installed with it inline, as the hourly views with the current-run rule."""
    rule = "argMax(build_id, (status = 'sealed', recorded_at))"
    assert [name for name, statement in schema.declarations().items() if rule in statement] == [schema.CURRENT_BUILDS]
    joining = [name for name, statement in schema.declarations().items()
               if f"JOIN {schema.CURRENT_BUILDS} AS" in statement]
    assert sorted(joining) == ["k8s_expenses_by_day_current", "k8s_nodes_by_day_current"]
    installed = objects(store, MIGRATED)
    for name in joining:
        assert "argMax(build_id" in installed[name] and f"JOIN {schema.CURRENT_BUILDS}" not in installed[name], name


def test_every_daily_column_is_made_from_the_hourly_rows():
    """A day build's SELECT names each written column of a daily table once: its identity, a rule of its own, or the
    sum of the hourly column of its name."""
    assert set(days.SOURCES) | {days.NAMESPACE_BY_DAY} == set(days.BUILD_TABLES)  # the rollup: its view's
    for table in days.SOURCES:
        written = schema.stored_columns(table)
        source = "k8s_expenses" if table == days.EXPENSES_BY_DAY else "k8s_nodes_hourly"
        hourly = {c.name for c in schema.columns(source)}
        assert set(days.IDENTITY[table]) <= set(written) and set(days.MADE[table]) <= set(written), table
        summed = [c for c in written if c not in days.IDENTITY[table] and c not in days.MADE[table]]
        assert summed and all(c in hourly for c in summed), (table, [c for c in summed if c not in hourly])
        assert days.build_sql(table).count(" SELECT ") == 1


def test_the_inline_copies_of_the_rule_in_the_history_are_the_rule():
    """Migrations 0010 and 0011 wrote the rule into the *_current views: each copy is the text of
    k8s_expense_current_runs as 0004 created it and as it is declared."""
    def words(sql: str) -> str:
        return " ".join(sql.replace("(", " ( ").replace(")", " ) ").split())

    every = migrations.load_migrations(ROOT / "migrations")
    rule = [s for s in every[3].statements
            if "VIEW IF NOT EXISTS k8s_expense_current_runs AS" in s][0].split(" AS\n", 1)[1]
    assert words(rule) == words(schema.declaration(schema.CURRENT_RUNS).split(" AS\n", 1)[1])
    for migration, views in ((every[9], 3), (every[10], 4)):  # 0010, and 0011's views over tables that grew
        inline = [s.split("INNER JOIN (", 1)[1].rsplit(") AS current", 1)[0] for s in migration.statements
                  if s.startswith("CREATE OR REPLACE VIEW") and "_current AS" in s]
        assert len(inline) == views and all(words(copy) == words(rule) for copy in inline), migration.name


def test_what_the_sink_writes_is_what_the_tables_declare():
    """Column names come from the declarations; a row's values come from its dataclass's fields by name, in the
    table's order; the server computes the rest."""
    assert writer.ROW_FIELDS == [f.name for f in dataclasses.fields(ExpenseRow)]
    assert writer.NODE_FIELDS == [f.name for f in dataclasses.fields(NodeRow)]
    assert writer.VOLUME_FIELDS == [f.name for f in dataclasses.fields(VolumeRow)]
    assert writer.EXPENSE_COLUMNS == schema.written_columns("k8s_expenses")
    assert writer.NODE_COLUMNS == schema.written_columns("k8s_nodes_hourly")
    computed = {t: [c.name for c in schema.columns(t) if c.computed] for t in schema.tables()}
    assert {t: names for t, names in computed.items() if names} == {
        "k8s_expenses": ["total_cost"], "k8s_nodes_hourly": ["total_cost"], "k8s_expense_runs": ["recorded_at"],
        "optscale_resource_ids": ["updated_at"], "focus_bill": ["loaded_at"], "k8s_day_builds": ["recorded_at"],
        "k8s_expenses_by_day": ["total_cost", *(f"{figure}_with_usage" for figure in (
            "cpu_request_core_hours", "ram_request_byte_hours", "cpu_cost", "ram_cost")),
            *(f"{cost}_reconciled" for cost in days.RECONCILED_COSTS), "total_cost_reconciled_exact",
            "cpu_cost_without_usage_reconciled", "ram_cost_without_usage_reconciled", "total_cost_reconciled",
            "cpu_cost_with_usage_reconciled", "ram_cost_with_usage_reconciled"],
        "k8s_nodes_by_day": ["total_cost"], "k8s_reconciliations": ["computed_at"],
        "k8s_reconciled_factors": ["namespace", "workload_name", "pod", "pod_uid", "pv_reconciled", "pv_matched"]}
    assert ledger.LEDGER_COLUMNS == [c.name for c in schema.columns("k8s_expense_runs") if c.name != "recorded_at"]
    assert writer.METRIC_COLUMNS == ["cloud_account_id", "hour", "metric", "labels", "value", "samples",
                                     "point_json", "run_id"]
    assert set(cleanup.RUN_TABLES) == {"k8s_expenses", "k8s_expenses_namespace_hourly",
                                       "k8s_expenses_workload_hourly", "kubecost_metrics_hourly",
                                       "kubecost_metric_points_hourly", "k8s_nodes_hourly", "k8s_volumes_hourly"}
    # the reconciliation's factors expire with the hours they scale
    assert set(migrations.RETAINED_TABLES) == {*cleanup.RUN_TABLES, "k8s_expense_runs", "k8s_reconciled_factors"}
    assert cleanup.EXPIRED_TABLES[-1] == "k8s_expense_runs"  # the ledger lists the days still to expire: last
    assert set(migrations.DAILY_TABLES) == {*days.BUILD_TABLES, days.BUILDS}
    assert migrations.TRACKING_DDL == schema.declaration("schema_migrations")
    # bill-load checks a file by the declared FOCUS columns (all but the optional Id and the load's own two)
    assert [c.name for c in bill.FOCUS_COLUMNS] == [c for c in schema.written_columns(bill.DECLARED)
                                                    if c not in ("Id", "load_id")]


def test_every_declaration_has_a_cluster_form():
    for name, statement in schema.declarations().items():
        rendered = render(schema.as_installed(statement), "prod-1")
        assert all(" ON CLUSTER `prod-1` " in r for r in rendered), name
        assert len(rendered) == (2 if statement.startswith("CREATE TABLE") else 1), name
