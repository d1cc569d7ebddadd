"""Every query of docs/sql.md runs on data the real pipeline wrote, and the sums it shows add up; the allocation
record's recipes also give the answers worked out by hand on rows written through the sink."""

from __future__ import annotations

import re
import time

import pytest


from kubecost_worker.model.rows import IDLE, ExpenseRow, HourResult, NodeRow
from kubecost_worker.store.ledger import RunRecord
from kubecost_worker.store import migrations
from kubecost_worker.store.clickhouse import ClickHouseSink

from .helpers import ROOT, ch_client, pipeline_written

pytestmark = [pytest.mark.needs_chdb]
ON_SIMULATED_DATA = [pytest.mark.slow, pytest.mark.needs_prometheus]
# Recipes of the allocation record that read what the model fills in as it learns to (migration 0011): empty on a
# store without it, which is no failure of the recipe.
FILLED_BY_THE_MODEL = {13: ("node rows", "SELECT count() FROM k8s_nodes_hourly"),
                       14: ("services", "SELECT countIf(service != '') FROM k8s_expenses")}
TENANTS = ["cookbook-a", "cookbook-b"]
HOURS = 3
END = int(time.time()) // 3600 * 3600
START = END - HOURS * 3600
QUERIES = re.findall(r"### (\d+)\. ([^\n]+)\n(?:.*?\n)??```sql\n(.*?)```", (ROOT / "docs" / "sql.md").read_text(),
                     re.S)


# -- the allocation record's recipes on hand-made rows ------------------------------------------------------------

RECENT = int(time.time()) // 3600 * 3600 - 2 * 3600


def row(namespace, pod, node="n1", **figures) -> ExpenseRow:
    return ExpenseRow("acme-prod", "c1", RECENT, namespace, "deployment", namespace, pod, node, **figures)


HANDMADE = [
    # Kubecost's example in namespace shop: requests 2 CPU and 1 GB, usage 0.5 CPU and 0.5 GB, CPU cost 20 and
    # RAM cost 1, over two containers of one pod and a second pod
    row("shop", "web-1", container="app", pod_uid="u1", service="web", cpu_request_core_hours=1.0,
        ram_request_byte_hours=0.5e9, cpu_usage_core_hours=0.2, ram_usage_byte_hours=0.3e9, cpu_cost=10.0,
        ram_cost=0.5),
    row("shop", "web-1", container="sidecar", pod_uid="u1", service="web", cpu_request_core_hours=0.5,
        cpu_usage_core_hours=0.1, cpu_cost=5.0),
    row("shop", "web-1", pod_uid="u1", service="web", pv_cost=2.0),  # the pod's own row: its volume
    row("shop", "web-2", container="app", pod_uid="u2", service="web", cpu_request_core_hours=0.5,
        ram_request_byte_hours=0.5e9, cpu_usage_core_hours=0.2, ram_usage_byte_hours=0.2e9, cpu_cost=5.0,
        ram_cost=0.5),
    ExpenseRow("acme-prod", "c1", RECENT, "shop", "service", "service/web", "", "", lb_cost=0.025, service="web"),
    # no requests, used and paid for: efficiency 1; a pod of no service
    row("batch", "job-1", node="n3", container="run", pod_uid="u3", cpu_usage_core_hours=0.4,
        ram_usage_byte_hours=1e9, cpu_cost=3.0, ram_cost=1.0),
    # idle rows of the three nodes
    row(IDLE, "", cpu_cost=4.0, ram_cost=1.0),
    row(IDLE, "", node="n2", cpu_cost=2.5),
    row(IDLE, "", node="n3", cpu_cost=0.5),
]
NODES = [NodeRow("acme-prod", "c1", RECENT, "n1", instance_type="n2-standard-4", cpu_cost=20.0, ram_cost=3.0,
                 idle_cost=5.0),
         NodeRow("acme-prod", "c1", RECENT, "n2", instance_type="n2-standard-4", cpu_cost=4.0, idle_cost=2.5),
         NodeRow("acme-prod", "c1", RECENT, "n3", instance_type="e2-medium", spot=True, cpu_cost=3.5, ram_cost=1.0,
                 idle_cost=0.5)]


@pytest.fixture
def handmade(tmp_path):
    # per test, and these tests before the simulator's: chDB opens one path at a time in a process, and the
    # simulator's store stays open for the rest of the module
    with ch_client(f"chdb://{tmp_path / 'clickhouse'}") as client:
        migrations.migrate(client)
        store = ClickHouseSink(client)
        for rerun in range(2):  # a rerun: the recipes read the current run only
            run = RunRecord.start("acme-prod", RECENT, "test")
            store.record(run)
            store.write_hour(run, HourResult(HANDMADE, [], samples_seen=1, unpriced_nodes=[], nodes=NODES))
        yield store


def answer(store, number: int) -> list[dict]:
    names, rows = run_as_is(store, query(number))
    return [dict(zip(names, r)) for r in rows]


def run_as_is(store, sql: str):
    result = store.client.query(sql)
    return list(result.column_names), result.result_rows


def test_efficiency_by_namespace_is_kubecosts(handmade):
    got = {r["namespace"]: r for r in answer(handmade, 12)}
    assert list(got) == ["shop", "batch"]  # by CPU and RAM cost, idle left out
    shop = got["shop"]
    assert (shop["cpu_cost"], shop["ram_cost"]) == (20.0, 1.0)
    assert (shop["cpu_efficiency"], shop["ram_efficiency"]) == pytest.approx((0.25, 0.5))
    assert shop["total_efficiency"] == pytest.approx(5.5 / 21)  # Kubecost's 26%
    assert (got["batch"]["cpu_efficiency"], got["batch"]["ram_efficiency"], got["batch"]["total_efficiency"]) == (
        1.0, 1.0, 1.0)  # no request: it was allocated its usage
    view = dict(handmade.query("SELECT namespace, total_efficiency FROM k8s_expenses_efficiency_current "
                               "WHERE cloud_account_id = 'acme-prod'"))
    assert view["shop"] == pytest.approx(5.5 / 21) and view["batch"] == 1.0 and view[IDLE] is None


def test_idle_by_node_type_joins_the_nodes(handmade):
    got = {(r["instance_type"], r["spot"]): r for r in answer(handmade, 13)}
    assert list(got) == [("n2-standard-4", False), ("e2-medium", True)]  # by idle cost
    standard = got[("n2-standard-4", False)]
    assert (standard["nodes"], standard["node_cost"], standard["idle_cost"], standard["idle_share"]) == (
        2, 27.0, 7.5, round(7.5 / 27, 3))
    assert (got[("e2-medium", True)]["idle_cost"], got[("e2-medium", True)]["node_cost"]) == (0.5, 4.5)
    # the join finds what the node rows say of themselves
    (idle,), = handmade.query("SELECT sum(idle_cost) FROM k8s_nodes_hourly_current")
    assert idle == sum(r["idle_cost"] for r in got.values())


def test_cost_by_service_adds_its_pods_and_its_load_balancer(handmade):
    got = answer(handmade, 14)
    assert got == [{"namespace": "shop", "service": "web", "pods": 2, "cost": 23.025, "load_balancer_cost": 0.025}]


def test_daily_resources_are_keyed_as_optscale_keys_them(handmade):
    got = {(r["resource_kind"], r["cloud_resource_id"]): r["cost"] for r in answer(handmade, 15)}
    assert got == {("pod", "u1"): 17.5, ("pod", "u2"): 5.5, ("pod", "u3"): 4.0,  # every row of the pod, its own too
                   ("load_balancer", "k8s:c1:lb:shop/service/web"): 0.025,
                   ("idle", "k8s:c1:idle:n1"): 5.0, ("idle", "k8s:c1:idle:n2"): 2.5, ("idle", "k8s:c1:idle:n3"): 0.5}
    (node, service, first, last), = handmade.query(
        "SELECT k8s_node, k8s_service, first_seen, last_seen FROM k8s_expenses_daily WHERE cloud_resource_id = 'u1'")
    assert (node, service) == ("n1", "web") and first == last and first.timestamp() == RECENT


@pytest.fixture(scope="module")
def sink(tmp_path_factory):  # the simulator's tenants, through Prometheus and the whole pipeline
    with pipeline_written(tmp_path_factory.mktemp("cookbook"), TENANTS, START, HOURS, pods=12, seed=9) as sink:
        yield sink


def run(sink, sql: str):
    result = sink.client.query(sql.replace("'acme-prod'", f"'{TENANTS[0]}'"))
    return list(result.column_names), result.result_rows


def test_the_cookbook_has_its_queries():
    assert [int(n) for n, _, _ in QUERIES] == list(range(1, 16))


@pytest.mark.parametrize("number, title, sql", QUERIES, ids=[f"q{n}" for n, _, _ in QUERIES])
@ON_SIMULATED_DATA[0]
@ON_SIMULATED_DATA[1]
def test_each_query_runs_and_returns_rows(sink, number, title, sql):
    names, rows = run(sink, sql)
    if not rows and int(number) in FILLED_BY_THE_MODEL:
        what, count = FILLED_BY_THE_MODEL[int(number)]
        if not sink.query(count)[0][0]:
            pytest.skip(f"the model writes no {what} yet (its answer on hand-made rows is tested above)")
    assert rows, title


def total(sink) -> float:
    return sink.query("SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String}",
                      {"t": TENANTS[0]})[0][0]


def query(number: int) -> str:
    return next(sql for n, _, sql in QUERIES if int(n) == number)


@ON_SIMULATED_DATA[0]
@ON_SIMULATED_DATA[1]
def test_the_sums_add_up(sink):
    grand = total(sink)
    names, rows = run(sink, query(6))  # by team: every row has a team or "(no team)"
    assert sum(r[1] for r in rows) == pytest.approx(grand, abs=0.01 * len(rows))
    names, rows = run(sink, query(4))  # month to date by cluster
    assert [r[0] for r in rows] == [f"{TENANTS[0]}-cluster"]
    names, rows = run(sink, query(9))  # the kinds of cost add up to the total, per day
    for row in rows:
        parts = dict(zip(names, row))
        assert sum(v for k, v in parts.items() if k not in ("day", "total")) == pytest.approx(parts["total"], abs=1e-3)
    names, rows = run(sink, query(3))  # idle share per node is a share
    assert all(0 <= dict(zip(names, r))["idle_share"] <= 1 for r in rows)
    names, rows = run(sink, query(11))  # every hour there, none missing
    assert sorted((r[0], r[1], r[4]) for r in rows) == [(t, HOURS, 0) for t in TENANTS]
    names, rows = run(sink, query(10))  # unowned: the simulator's bare pods and its unclaimed volume
    kinds = {r[1] for r in rows}
    assert {"__unallocated__", "persistentvolume"} <= kinds
