"""The allocation record (``model/rows.py``'s rows of every kind and node rows, computed in ``test_model_record.py``) in
the store (``store/clickhouse.py``, ``store/migrations.py``, the views of ``store/schema/``): every column and the node
rows written, replaced by reruns and removed by cleanup; the namespace and workload rollups; efficiency on read (the
efficiency view); the ledger's unpriced nodes in ``status`` and ``/metrics``; hours written at 0010 and 0011 readable
after the upgrades that brought these columns, ``migrate --resume``, the cluster form; ``bench/storage.py``'s day
through the sink. The rows and the ``sink`` fixture also serve ``test_read_metroculus.py``."""

from __future__ import annotations

import dataclasses

import pytest

from kubecost_worker import telemetry
from kubecost_worker.read import metroculus
from kubecost_worker.jobs.status import summarize
from kubecost_worker.model.rows import (GIB, IDLE, MANAGEMENT, PRICE_DEFAULT, PRICE_NODE, ExpenseRow, HourResult,
                                        NodeRow)
from kubecost_worker.store.ledger import RunRecord
from kubecost_worker.store import migrations
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.store.writer import NODE_FIELDS, ROW_FIELDS

from .helpers import ROOT, ch_client

pytestmark = [pytest.mark.needs_chdb]

H0 = 1_767_225_600
T = "t-1"


@pytest.fixture
def sink(ch_url):
    with ch_client(ch_url) as client:
        migrations.migrate(client)
        yield ClickHouseSink(client)


def commit(sink: ClickHouseSink, result: HourResult, tenant: str = T, hour: int = H0) -> RunRecord:
    run = RunRecord.start(tenant, hour, "test")
    sink.record(run)
    return sink.write_hour(run, result)


def container(pod: str, name: str, *, hour=H0, namespace="shop", **figures) -> ExpenseRow:
    return ExpenseRow(T, "c1", hour, namespace, "deployment", "web", pod, "n1", container=name, pod_uid=f"uid-{pod}",
                      service="web", labels={"app": "web"}, price_source=PRICE_NODE, running_minutes=60.0,
                      **figures)


def allocation_hour(hour=H0, scale=1.0) -> HourResult:
    """Rows of every kind with every new column set (and a container without usage series: NULL)."""
    rows = [
        container("web-1", "app", hour=hour, cpu_core_hours=2.0 * scale, ram_byte_hours=GIB, cpu_cost=0.5 * scale,
                  ram_cost=0.25, cpu_request_core_hours=2.0, ram_request_byte_hours=GIB, cpu_usage_core_hours=0.5,
                  ram_usage_byte_hours=0.5 * GIB, cpu_usage_max_cores=1.25, ram_usage_max_bytes=0.75 * GIB),
        container("web-1", "istio-proxy", hour=hour, cpu_core_hours=0.1, cpu_cost=0.025, cpu_request_core_hours=0.1),
        dataclasses.replace(container("web-1", "", hour=hour), running_minutes=0.0, price_source="",
                            pv_byte_hours=10 * GIB, pv_cost=0.01, network_zone_cost=0.001, network_region_cost=0.002,
                            network_internet_cost=0.12, network_zone_bytes=1e8, network_region_bytes=2e8,
                            network_internet_bytes=1e9, network_cost=0.001 + 0.002 + 0.12),
        ExpenseRow(T, "c1", hour, "shop", "service", "service/web", "", "", lb_cost=0.025, service="web"),
        ExpenseRow(T, "c1", hour, IDLE, IDLE, IDLE, "", "n1", cpu_cost=0.3, ram_cost=0.1, price_source=PRICE_NODE),
        ExpenseRow(T, "c1", hour, MANAGEMENT, MANAGEMENT, MANAGEMENT, "", "", management_cost=0.1),
    ]
    nodes = [NodeRow(T, "c1", hour, "n1", provider_id="gce://p/europe-west1-b/n1", instance_type="n2-standard-4",
                     region="europe-west1", zone="europe-west1-b", arch="amd64", spot=True, running_minutes=60.0,
                     cpu_cores=4.0, ram_bytes=16 * GIB, cpu_price=0.2, ram_price=0.025, price_source=PRICE_NODE,
                     cpu_cost=0.8, ram_cost=0.4, allocated_cost=0.8, idle_cost=0.4),
             NodeRow(T, "c1", hour, "n2", instance_type="e2-medium", price_source=PRICE_DEFAULT, cpu_cores=2.0,
                     cpu_price=0.031611, cpu_cost=0.063222, idle_cost=0.063222)]
    return HourResult(rows, [], samples_seen=10, unpriced_nodes=["n2"], nodes=nodes)


def stored(sink, view: str, fields: list[str]) -> list[tuple]:
    return sorted(sink.query(f"SELECT {', '.join(fields)} FROM {view}"), key=repr)


def as_stored(row, fields: list[str]) -> tuple:
    from kubecost_worker.hours import utc

    return tuple(utc(row.hour).replace(tzinfo=None) if f == "hour" else getattr(row, f) for f in fields)


def test_write_hour_stores_every_new_column_and_the_node_rows(sink):
    result = allocation_hour()
    done = commit(sink, result)
    fields = [f for f in ROW_FIELDS if f != "hour"]
    assert stored(sink, "k8s_expenses_current", fields) == sorted((as_stored(r, fields) for r in result.rows), key=repr)
    # unknown usage is NULL, never 0: the sidecar had no usage series
    assert sink.query("SELECT cpu_usage_core_hours, ram_usage_max_bytes FROM k8s_expenses_current "
                      "WHERE container = 'istio-proxy'") == [(None, None)]
    node_fields = [f for f in NODE_FIELDS if f != "hour"]
    assert stored(sink, "k8s_nodes_hourly_current", node_fields) == sorted(
        (as_stored(n, node_fields) for n in result.nodes), key=repr)
    assert dict(sink.query("SELECT node, total_cost FROM k8s_nodes_hourly_current")) == {
        n.node: n.total_cost for n in result.nodes}
    # the ledger's record of the price gap, and the total the rows add up to
    assert done.unpriced_nodes == ("n2",)
    assert sink.query("SELECT unpriced_nodes, total_cost FROM k8s_expense_current_run_records") == [
        (["n2"], pytest.approx(result.total_cost))]
    (total,), = sink.query("SELECT sum(total_cost) FROM k8s_expenses_current")
    assert total == pytest.approx(result.total_cost)


def test_reruns_replace_the_node_rows_and_cleanup_removes_the_superseded_ones(sink):
    commit(sink, allocation_hour())
    rerun = allocation_hour(scale=2.0)
    rerun.nodes = rerun.nodes[:1]  # the rerun no longer sees n2
    rerun.nodes[0].cpu_cost = 1.6
    rerun.unpriced_nodes = []
    commit(sink, rerun)
    assert sink.query("SELECT node, cpu_cost FROM k8s_nodes_hourly_current") == [("n1", 1.6)]
    assert sink.query("SELECT count() FROM k8s_nodes_hourly") == [(3,)]  # the first run's, underneath
    assert sink.query("SELECT unpriced_nodes FROM k8s_expense_current_run_records") == [([],)]
    assert sink.collect_garbage().runs == 1
    assert sink.query("SELECT node, cpu_cost FROM k8s_nodes_hourly") == [("n1", 1.6)]
    assert sink.query("SELECT sum(cpu_cost) FROM k8s_expenses_current WHERE container = 'app'") == [(1.0,)]


def test_the_namespace_rollup_sums_the_network_classes_requests_and_usage(sink):
    result = allocation_hour()
    commit(sink, result)
    shop = [r for r in result.rows if r.namespace == "shop"]
    (zone, region, internet, cpu_request, cpu_usage, ram_usage), = sink.query(
        "SELECT network_zone_cost, network_region_cost, network_internet_cost, cpu_request_core_hours, "
        "cpu_usage_core_hours, ram_usage_byte_hours FROM k8s_expenses_namespace_current WHERE namespace = 'shop'")
    assert (zone, region, internet) == (0.001, 0.002, 0.12)
    assert cpu_request == sum(r.cpu_request_core_hours for r in shop) and cpu_usage == 0.5 and ram_usage == 0.5 * GIB
    # a namespace without usage series: NULL, not 0
    assert sink.query(f"SELECT cpu_usage_core_hours FROM k8s_expenses_namespace_current WHERE namespace = '{IDLE}'") \
        == [(None,)]


def efficiency_rows(hour=H0) -> list[ExpenseRow]:
    def row(namespace, pod, **figures):
        return ExpenseRow(T, "c1", hour, namespace, "deployment", namespace, pod, "n1", container="c", **figures)

    return [
        # Kubecost's example, split over two containers of one namespace: requests 2 CPU and 1 GB, usage 0.5 CPU
        # and 0.5 GB, CPU cost 20, RAM cost 1 -> (0.25 x 20 + 0.5 x 1) / 21 = 5.5 / 21
        row("kubecost", "a", cpu_request_core_hours=1.5, ram_request_byte_hours=0.5e9, cpu_usage_core_hours=0.25,
            ram_usage_byte_hours=0.5e9, cpu_cost=15.0, ram_cost=0.5),
        row("kubecost", "b", cpu_request_core_hours=0.5, ram_request_byte_hours=0.5e9, cpu_usage_core_hours=0.25,
            ram_usage_byte_hours=0.0, cpu_cost=5.0, ram_cost=0.5),
        # no requests: used and paid for -> 1; used but free -> 0
        row("norequest", "a", cpu_usage_core_hours=0.3, ram_usage_byte_hours=1e6, cpu_cost=2.0, ram_cost=0.0),
        # requests but no usage series -> NULL, for the resource and the total
        row("unknown", "a", cpu_request_core_hours=1.0, ram_request_byte_hours=1e9, cpu_cost=1.0, ram_cost=1.0),
        # no CPU and RAM cost at all: total 0
        row("free", "a", pv_cost=3.0),
    ]


EFFICIENCY = {  # namespace -> (cpu, ram, total), computed by hand
    "kubecost": (0.25, 0.5, 5.5 / 21),
    "norequest": (1.0, 0.0, 1.0),
    "unknown": (None, None, None),
    "free": (None, None, 0.0),
}


def test_efficiency_per_namespace_and_hour_follows_kubecost_and_the_zero_request_rule(sink):
    run = RunRecord.start(T, H0, "test")
    sink.record(run)
    rows = efficiency_rows()
    # two insert blocks of one run: the rollup holds two rows for the namespace, the view sums them first
    from kubecost_worker.store.writer import EXPENSE_COLUMNS, as_expense_columns
    from kubecost_worker.hours import now

    sink.client.insert("k8s_expenses", as_expense_columns(rows[:1], run.run_id, now()), column_names=EXPENSE_COLUMNS,
                       column_oriented=True)
    sink.write_hour(run, HourResult(rows[1:], [], samples_seen=1, unpriced_nodes=[]))
    got = {ns: (cpu, ram, total) for ns, cpu, ram, total in sink.query(
        "SELECT namespace, cpu_efficiency, ram_efficiency, total_efficiency FROM k8s_expenses_efficiency_current")}
    assert got.keys() == EFFICIENCY.keys()
    for namespace, expected in EFFICIENCY.items():
        assert got[namespace] == pytest.approx(expected), namespace
    (cost, request, usage), = sink.query("SELECT cpu_cost, cpu_request_core_hours, cpu_usage_core_hours "
                                         "FROM k8s_expenses_efficiency_current WHERE namespace = 'kubecost'")
    assert (cost, request, usage) == (20.0, 2.0, 0.5)  # the sums beside the ratios, to sum over longer windows


def test_ledger_status_and_metrics_show_unpriced_nodes(sink):
    commit(sink, allocation_hour())
    commit(sink, allocation_hour(hour=H0 + 3600), hour=H0 + 3600)
    rerun = allocation_hour(hour=H0 + 3600)
    rerun.unpriced_nodes = []
    commit(sink, rerun, hour=H0 + 3600)  # the hour's current run priced every node
    line, total = summarize(sink.ledger_summary(T)).splitlines()
    assert "; 2 h done; unpriced 1 h [2026-01-01T00:00:00Z, 2026-01-01T01:00:00Z) (1 node without price series: n2)" \
        in line and total.endswith(", 1 unpriced")
    telemetry.UNPRICED_NODES.labels(T).set(2)
    assert b'kcw_unpriced_nodes{tenant="t-1"} 2.0' in telemetry.metrics_text()


def test_migration_0011_applied_twice_changes_nothing(sink):
    """As ``migrate --resume`` re-runs it after a crash: the schema, the rows and the rollup's sums stay as they
    were, and rows inserted afterwards are summed once."""
    commit(sink, allocation_hour())
    schema = "SELECT table, name, type, compression_codec FROM system.columns WHERE database = currentDatabase() " \
             "ORDER BY table, name"
    before = sink.query(schema)
    snapshot = ("SELECT * FROM k8s_expenses_current ORDER BY ALL", "SELECT * FROM k8s_expenses_namespace_hourly "
                "ORDER BY ALL", "SELECT * FROM k8s_nodes_hourly ORDER BY ALL",
                "SELECT * FROM k8s_expenses_workload_hourly ORDER BY ALL")
    data = [sink.query(q) for q in snapshot]
    later = migrations.load_migrations(ROOT / "migrations")[10:]
    assert later[0].name == "allocation_record"
    for migration in later:  # a crash after 0011's 'started', before the migrations after it
        migrations._track(sink.client, migration, "started")
    with pytest.raises(Exception, match="started but never finished"):
        migrations.migrate(sink.client)
    assert migrations.migrate(sink.client, resume=True) == [f"{m.version:04d}_{m.name}" for m in later]
    assert sink.query(schema) == before and [sink.query(q) for q in snapshot] == data
    commit(sink, allocation_hour(hour=H0 + 3600), hour=H0 + 3600)
    assert sink.query("SELECT sum(rows) FROM k8s_expenses_namespace_hourly WHERE hour = toDateTime({h:Int64}, 'UTC')",
                      {"h": H0 + 3600}) == [(len(allocation_hour().rows),)]


def test_hours_written_at_0010_stay_readable_after_0011(ch_url, tmp_path):
    """An installation at 0010 with data: after 0011 its hours read as before on the old columns, usage NULL,
    network classes 0, in every view (the efficiency view too: unknown), and new hours beside them."""
    from .test_migrations import WrittenBefore, migrated_to
    from .test_store import result_with

    with ch_client(ch_url) as client:
        assert migrated_to(client, tmp_path, 10)[-1] == "0010_run_ledger_refused_collected"
        old_sink = ClickHouseSink(WrittenBefore(client))
        old = result_with({"a": 1.0, "b": 2.0})
        old.rows[0].network_cost = 0.5  # written before the classes existed: in network_cost only
        for hour in (H0, H0 + 3600):
            run = RunRecord.start(T, hour, "test")
            old_sink.record(run)
            rows = [dataclasses.replace(r, hour=hour) for r in old.rows]
            old_sink.write_hour(run, HourResult(rows, old.metric_samples, samples_seen=1, unpriced_nodes=[]))
        views = ("k8s_expenses_current", "k8s_expenses_namespace_current", "kubecost_metrics_current",
                 "k8s_expense_current_run_records")
        columns = {v: ", ".join(c for c, *_ in client.query(f"DESCRIBE {v}").result_rows) for v in views}
        before = {v: client.query(f"SELECT {columns[v]} FROM {v} ORDER BY ALL").result_rows for v in views}
        assert migrations.migrate(client) == ["0011_allocation_record", "0012_workload_rollup", "0013_thanos_load",
                                              "0014_daily_resources", "0015_ledger_server_time",
                                              "0016_current_run_views", "0017_focus_bill", "0018_daily_tier",
                                              "0019_reconciliation", "0020_reconciled_daily_tier",
                                              "0021_bill_index", "0022_reconciled_claims"]
        sink = ClickHouseSink(client)
        assert {v: sink.query(f"SELECT {columns[v]} FROM {v} ORDER BY ALL") for v in views} == before
        assert sink.query(
            "SELECT DISTINCT container, pod_uid, service, price_source, cpu_request_core_hours, cpu_usage_core_hours, "
            "ram_usage_byte_hours, cpu_usage_max_cores, ram_usage_max_bytes, network_zone_cost, network_region_cost, "
            "network_internet_cost, network_internet_bytes FROM k8s_expenses_current") == [
            ("", "", "", "", 0.0, None, None, None, None, 0.0, 0.0, 0.0, 0.0)]
        assert sink.query("SELECT DISTINCT network_internet_cost, cpu_usage_core_hours, cpu_request_core_hours "
                          "FROM k8s_expenses_namespace_current") == [(0.0, None, 0.0)]
        assert sink.query("SELECT DISTINCT unpriced_nodes FROM k8s_expense_current_run_records") == [([],)]
        assert sink.query("SELECT DISTINCT cpu_efficiency, ram_efficiency, total_efficiency "
                          "FROM k8s_expenses_efficiency_current") == [(None, None, None)]
        # the old hours' network cost is there, in network_cost, and the breakdown has no classes for them
        answer = metroculus.cluster_costs(sink, T, H0, H0 + 2 * 3600)
        assert answer["summary"]["network_cost"] == 1.0 and answer["breakdown"]["network_internet_cost"] == 0.0
        # a new hour beside them, through the changed materialized view, and a rerun of an old one
        commit(sink, allocation_hour(hour=H0 + 2 * 3600), hour=H0 + 2 * 3600)
        commit(sink, allocation_hour(hour=H0), hour=H0)
        assert dict(sink.query("SELECT toUnixTimestamp(hour), sum(network_internet_cost) "
                               "FROM k8s_expenses_namespace_current GROUP BY hour")) == {
            H0: 0.12, H0 + 3600: 0.0, H0 + 2 * 3600: 0.12}
        assert sink.query("SELECT count() FROM k8s_nodes_hourly_current") == [(4,)]
        sink.collect_garbage()
        assert sink.query("SELECT count() FROM k8s_expenses_current WHERE hour = toDateTime({h:Int64}, 'UTC')",
                          {"h": H0 + 3600}) == [(2,)]


def test_an_empty_installation_migrates_in_cluster_form_without_unknown_statements():
    from kubecost_worker.store.cluster import render

    for statement in migrations.load_migrations(ROOT / "migrations")[10].statements:
        assert render(statement, "prod-1"), statement[:60]


def test_the_bench_day_goes_through_the_sink(tmp_path, monkeypatch):
    """bench/storage.py's rows go through the real sink (a small day here)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    storage = __import__("storage")
    out = storage.measure(pods=20, hours=2, seed=3, directory=tmp_path)
    assert out["rows"] > out["container_rows"] > 0 and out["bytes_per_row"] > 0


WORKLOAD_SUMS = ("SELECT hour, run_id, namespace, workload_kind, workload_name, container, service, labels, {sums} "
                 "FROM {table} GROUP BY ALL ORDER BY ALL")


def workload_sums(sink: ClickHouseSink, table: str) -> list[tuple]:
    figures = ["running_minutes", "cpu_cost", "ram_cost", "pv_cost", "network_cost", "lb_cost", "management_cost",
               "total_cost", "cpu_request_core_hours", "cpu_usage_core_hours", "ram_usage_byte_hours"]
    highest = "max(cpu_usage_max_cores), max(ram_usage_max_bytes), "
    if table == "k8s_expenses":
        maxima = "arraySort(groupArray(cpu_usage_max_cores)), arraySort(groupArray(ram_usage_max_bytes)), count()"
    else:
        maxima = ("arraySort(arrayFlatten(groupArray(cpu_usage_maxima))), "
                  "arraySort(arrayFlatten(groupArray(ram_usage_maxima))), sum(rows)")
    sums = ", ".join([*(f"sum({f})" for f in figures), highest + maxima])
    return sink.query(WORKLOAD_SUMS.format(sums=sums, table=table))


def test_hours_written_at_0011_get_their_workload_rollup_from_0012(ch_url, tmp_path):
    """The workload rollup (0012) of hours written before it is backfilled once; later hours go through its
    materialized view; either way it holds k8s_expenses' sums and usage maxima per container of a controller."""
    from .test_migrations import WrittenBefore, migrated_to

    with ch_client(ch_url) as client:
        assert migrated_to(client, tmp_path, 11)[-1] == "0011_allocation_record"
        old_sink = ClickHouseSink(WrittenBefore(client))
        commit(old_sink, allocation_hour())
        commit(old_sink, allocation_hour(hour=H0 + 3600, scale=2.0), hour=H0 + 3600)
        assert migrations.migrate(client) == ["0012_workload_rollup", "0013_thanos_load", "0014_daily_resources",
                                              "0015_ledger_server_time", "0016_current_run_views",
                                              "0017_focus_bill", "0018_daily_tier", "0019_reconciliation",
                                              "0020_reconciled_daily_tier",
                                              "0021_bill_index", "0022_reconciled_claims"]
        sink = ClickHouseSink(client)
        commit(sink, allocation_hour(hour=H0 + 7200, scale=3.0), hour=H0 + 7200)
        expected = workload_sums(sink, "k8s_expenses")
        assert len({row[0] for row in expected}) == 3 and workload_sums(sink, "k8s_expenses_workload_hourly") == expected
        assert any(row[-3] for row in expected)  # the maxima are there: rightsizing reads them
        rollup = next(m for m in migrations.load_migrations(ROOT / "migrations") if m.name == "workload_rollup")
        for statement in rollup.statements:  # as `migrate --resume` would: nothing added twice
            sink.client.command(statement)
        assert workload_sums(sink, "k8s_expenses_workload_hourly") == expected
