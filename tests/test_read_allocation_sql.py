"""``read/allocation.py``'s answers in chDB: shared allocation answers, shared in SQL past ``allocation.MAX_PARTS``
parts (``sharing.coefficients`` from a step's totals, applied per part by a second query) and in Python below, equal
the pure ``sharing.share`` on the same stored rows for every policy; and their memory does not grow with the window.
Hand-made rows in chDB: several clusters and nodes, idle with and without receivers, shared namespaces and labels,
management, zero-cost groups, pods renamed every hour."""

from __future__ import annotations

import gc
import itertools
import math
import tracemalloc

import pytest

from kubecost_worker.read import allocation, metroculus, sharing
from kubecost_worker.model.rows import ExpenseRow, HourResult
from kubecost_worker.store.ledger import RunRecord
from kubecost_worker.store import client as clickhouse_client
from kubecost_worker.store import migrations
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.store.client import ReadClients

from .helpers import ch_client
from .test_api_allocation import SHARINGS

pytestmark = [pytest.mark.needs_chdb]

TENANT, CHURNING = "sharing-tenant", "churning-tenant"
H0 = 1_767_225_600 - 5 * 3600  # five hours before a day's (and a month's) end: the steps split the window
HOURS = 8
REL = 1e-9


def hour_rows(tenant: str, hour: int, h: int) -> list[ExpenseRow]:
    """One hour of three clusters. c1: pods over three nodes (n3's GPU idle has no GPU pod on n3), shared and
    labelled pods, a zero-cost pod, management and an unmounted volume; c2: one node; c3: nothing but a shared
    namespace and idle. Costs and names change from hour to hour."""
    f = 1 + h / 7

    def pod(cluster, namespace, name, node, cpu=0.0, ram=0.0, gpu=0.0, usage=True, labels=None, container="main",
            **more):
        return ExpenseRow(tenant, cluster, hour, namespace, "deployment", namespace + "-app", name, node,
                          cpu_cost=cpu * f, ram_cost=ram * f, gpu_cost=gpu, cpu_core_hours=cpu * 3,
                          ram_byte_hours=ram * 2**30, gpu_hours=gpu and 1.0, cpu_request_core_hours=cpu * 2,
                          ram_request_byte_hours=ram * 2**29, labels=labels or {}, container=container,
                          cpu_usage_core_hours=cpu if usage else None,
                          ram_usage_byte_hours=ram * 2**28 if usage else None, running_minutes=60, **more)

    def special(cluster, namespace, node, **costs):
        return ExpenseRow(tenant, cluster, hour, namespace, "", "", "", node, **costs)

    rows = [
        pod("c1", "data", f"data-0-{h % 3}", "n1", cpu=2.0, ram=1.0, gpu=0.5, labels={"team": "data"}),
        pod("c1", "data", f"data-0-{h % 3}", "n1", cpu=0.5, ram=0.25, container="sidecar", labels={"team": "data"}),
        pod("c1", "data", "data-1", "n2", cpu=1.0, ram=2.0, usage=h % 2 == 0, labels={"team": "platform"}),
        pod("c1", "frontend", f"web-{h}", "n2", cpu=1.5, ram=0.5, labels={"team": "web", "env": "staging"}),
        pod("c1", "frontend", "web-x", "n3", cpu=0.7, ram=0.7, labels={"team": "web"}),
        pod("c1", "kube-system", "dns", "n1", cpu=0.3, ram=0.2),
        pod("c1", "kube-system", "proxy", "n3", cpu=0.2, ram=0.1),
        pod("c1", "monitoring", "prom", "n2", cpu=0.4, ram=0.9, labels={"env": "staging"}),
        pod("c1", "batch", "idle-job", "n3", usage=False),  # costs nothing: the even split still counts it
        special("c1", "__idle__", "n1", cpu_cost=1.0 * f, ram_cost=0.5),
        special("c1", "__idle__", "n2", cpu_cost=0.8, ram_cost=0.3 * f),
        special("c1", "__idle__", "n3", cpu_cost=0.6, ram_cost=0.2, gpu_cost=2.0),
        special("c1", "__cluster_management__", "", management_cost=0.1),
        special("c1", "__unmounted__", "", pv_cost=0.05 * f),
        pod("c2", "data", f"etl-{h}", "m1", cpu=3.0, ram=1.0, labels={"team": "data"}),
        pod("c2", "batch", "cron", "m1", cpu=0.1, ram=0.1, usage=False),
        special("c2", "__idle__", "m1", cpu_cost=2.0, ram_cost=1.0, gpu_cost=0.5),
        special("c2", "__cluster_management__", "", management_cost=0.1),
        pod("c3", "kube-system", "dns", "k1", cpu=0.2, ram=0.2),
        special("c3", "__idle__", "k1", cpu_cost=0.4, ram_cost=0.1),
    ]
    return rows if h != 3 else [r for r in rows if r.cluster_id != "c2"]  # c2 away for an hour


def commit(sink: ClickHouseSink, rows: list[ExpenseRow]) -> None:
    run = RunRecord.start(rows[0].cloud_account_id, rows[0].hour, "test")
    sink.record(run)
    sink.write_hour(run, HourResult(rows, [], samples_seen=1, unpriced_nodes=[]))


def copy_hour_renamed(sink: ClickHouseSink, tenant: str, hours: int) -> None:
    """The tenant's one stored hour copied to the ``hours - 1`` hours before it, each copy's pods renamed with its
    hour (``bench/sharing_memory.py``'s fill)."""
    for table in ("k8s_expenses", "k8s_expense_runs"):
        names = [r[0] for r in sink.query(f"SELECT name FROM system.columns WHERE table = '{table}' "
                                          "AND database = currentDatabase() AND default_kind != 'ALIAS' "
                                          "ORDER BY position")]
        copied = {"hour": "hour - toIntervalHour(n.number)",
                  "pod": "if(pod = '', pod, concat(pod, '-h', toString(n.number)))"}
        sink.client.command(f"INSERT INTO {table} ({', '.join(names)}) SELECT "
                            f"{', '.join(copied.get(c, c) for c in names)} FROM {table} CROSS JOIN numbers(1, "
                            f"{hours - 1}) AS n WHERE cloud_account_id = {{t:String}}", parameters={"t": tenant})


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    url = f"chdb://{tmp_path_factory.mktemp('sharing-sql') / 'ch'}"
    with ch_client(url) as client:
        migrations.migrate(client)
        sink = ClickHouseSink(client, url=url)
        for h in range(HOURS):
            commit(sink, hour_rows(TENANT, H0 + h * 3600, h))
        churning = [ExpenseRow(CHURNING, "c1", H0, "data", "deployment", "app", f"p{i}", f"n{i % 4}",
                               cpu_cost=0.01 * (i + 1), ram_cost=0.02, container="main") for i in range(100)]
        churning += [ExpenseRow(CHURNING, "c1", H0, "__idle__", "", "", "", f"n{i}", cpu_cost=0.5, ram_cost=0.25)
                     for i in range(4)]
        commit(sink, churning)
        copy_hour_renamed(sink, CHURNING, 48)
        reader = ReadClients(url)
        yield reader
        reader.close()


def expected(reader, request: allocation.AllocationRequest, start: int, end: int) -> list[dict]:
    """The answer as the pure ``sharing.share`` gives it: each step's parts summed by SQL (step, cluster, idle
    domain, role, filter, group), shared in Python, by total cost then key."""
    table = allocation.source_table(request)
    params = allocation.BoundParams(metroculus.bound_params(TENANT, start, end))
    figures = allocation.FIGURES_SQL if table == "k8s_expenses" else allocation.ROLLUP_FIGURES_SQL
    dims = [f"{allocation.dimension_sql(d, params)} AS d{i}" for i, d in enumerate(request.dimensions)]
    keys = ", ".join(f"d{i}" for i in range(len(dims)))
    node = "node" if request.policy.idle_by_node else "''"
    rows = reader.query(
        f"SELECT {allocation.STEPS[request.step]} AS ts, cluster_id AS c, {node} AS n, "
        f"{allocation._role_sql(request, params)} AS role, {allocation._filter_sql(request.filters, params)} AS kept, "
        f"{', '.join(dims)}, {', '.join(figures[name] for name in sharing.FIGURES)}, toUnixTimestamp(min(hour)), "
        f"toUnixTimestamp(max(hour)) FROM {table} WHERE {metroculus.WINDOW} GROUP BY ts, c, n, role, kept, {keys} "
        "ORDER BY ts", params.values)
    count, answer = len(dims), []
    for ts, step in itertools.groupby(rows, key=lambda row: row[0]):
        parts = [sharing.Part(tuple(rest[:count]), cluster, node, role, bool(kept),
                              dict(zip(sharing.FIGURES, rest[count:count + len(sharing.FIGURES)])), rest[-2], rest[-1])
                 for _, cluster, node, role, kept, *rest in step]
        groups = sharing.share(parts, request.policy)
        groups.sort(key=lambda g: -g.total_cost)
        answer += [allocation._finished(request, ts, g) for g in groups]
    return answer


def assert_same_answer(got: list[dict], want: list[dict], names: tuple[str, ...]) -> None:
    def key(row):
        return (row["timestamp"], *(row[name] for name in names))

    assert len(got) == len(want) and {key(r) for r in got} == {key(r) for r in want}
    for mine, theirs in zip(got, want):  # the order: only totals equal to rounding may change places
        if key(mine) != key(theirs):
            assert mine["timestamp"] == theirs["timestamp"]
            assert mine["total_cost"] == pytest.approx(theirs["total_cost"], rel=REL, abs=1e-12)
    theirs = {key(r): r for r in want}
    for mine in got:
        for name, value in mine.items():
            other = theirs[key(mine)][name]
            if isinstance(value, float) or isinstance(other, float):
                assert (value is None) == (other is None), (key(mine), name)
                assert value == pytest.approx(other, rel=REL, abs=1e-12), (key(mine), name)
            else:
                assert value == other, (key(mine), name)


# the API tests' sharings, and two more with the even split
POLICIES = [
    {},
    *SHARINGS,
    {"shareIdle": "true", "idleByNode": "true", "shareNamespaces": "kube-system", "shareSplit": "even"},
    {"shareLabels": "team:data", "shareSplit": "even", "shareIdle": "true"},
]
SHAPES = [("namespace", "window", ""), ("pod", "hour", ""), ("controller,label:team", "day", ""),
          ("node,container", "month", ""), ("cluster", "week", ""),
          ("namespace,pod", "window", 'namespace:"data","frontend"'),
          ("node", "hour", 'node~:"n1","m"+cluster!:"c3"'), ("label:team", "day", 'label[team]!:"web"')]


@pytest.fixture(params=["in-python", "in-sql"])
def shared_in(request, monkeypatch) -> str:
    """Where a shared piece is shared: in Python (``sharing.share``) while it has at most ``MAX_PARTS`` parts, in SQL
    (two queries, the same coefficients) past them."""
    if request.param == "in-sql":
        monkeypatch.setattr(allocation, "MAX_PARTS", 0)
    return request.param


@pytest.mark.parametrize("shares", POLICIES, ids=lambda s: "&".join(f"{k}={v}" for k, v in s.items()) or "none")
@pytest.mark.parametrize("aggregate, step, where", SHAPES, ids=lambda v: v or "-")
def test_the_sql_answer_is_the_pure_share(reader, shared_in, shares, aggregate, step, where):
    request = allocation.parse_request({"aggregate": aggregate, "step": step, "filter": where, **shares})
    start, end = H0, H0 + HOURS * 3600
    got = list(allocation.allocation(reader, request, TENANT, start, end))
    assert got
    assert_same_answer(got, expected(reader, request, start, end), request.field_names)


@pytest.mark.parametrize("shares", POLICIES[1:], ids=lambda s: "&".join(f"{k}={v}" for k, v in s.items()))
def test_the_answer_asked_in_pieces_and_runs_of_steps_is_the_same(reader, monkeypatch, shared_in, shares):
    """Pieces of a few stored rows (metroculus.ROWS_PER_PIECE) and, in SQL, one step per query (MAX_BOUND_DOMAINS):
    the steps' coefficients still meet their parts."""
    monkeypatch.setattr(metroculus, "ROWS_PER_PIECE", 30)
    monkeypatch.setattr(allocation, "MAX_BOUND_DOMAINS", 1)
    for aggregate, step in (("pod", "hour"), ("controller,node", "day"), ("namespace", "hour")):
        request = allocation.parse_request({"aggregate": aggregate, "step": step, **shares})
        start, end = H0 + 1800, H0 + HOURS * 3600 - 1  # hours overlapping the window
        assert_same_answer(list(allocation.allocation(reader, request, TENANT, start, end)),
                           expected(reader, request, start, end), request.field_names)


def test_without_a_filter_sharing_keeps_the_total_and_moves_only_what_has_a_receiver(reader):
    request = allocation.parse_request({"aggregate": "namespace", "step": "window", "shareIdle": "true",
                                        "idleByNode": "true", "shareNamespaces": "kube-system"})
    rows = list(allocation.allocation(reader, request, TENANT, H0, H0 + HOURS * 3600))
    stored = reader.query("SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String}",
                          {"t": TENANT})[0][0]
    assert math.fsum(r["total_cost"] for r in rows) == pytest.approx(stored, rel=REL)
    by_namespace = {r["namespace"]: r for r in rows}
    # the GPU idle of n3 and of c2 (away an hour) has no GPU pod on its node: it stays, alone; c3's kube-system has
    # nobody to share with
    assert by_namespace["__idle__"]["gpu_cost"] == pytest.approx(2.0 * HOURS + 0.5 * (HOURS - 1))
    assert by_namespace["__idle__"]["cpu_cost"] == 0 and by_namespace["__idle__"]["cpu_usage_core_hours"] is None
    assert by_namespace["kube-system"]["total_cost"] > 0 and by_namespace["kube-system"]["shared_cost"] == 0


def python_peak(reader, request, start: int, end: int) -> tuple[int, int]:
    """(rows, the peak of Python's allocations while the answer is read row by row and dropped)."""
    gc.collect()
    tracemalloc.start()
    try:
        rows = sum(1 for _ in allocation.allocation(reader, request, CHURNING, start, end))
        return rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("params", [{"shareIdle": "true"}, {"shareIdle": "true", "idleByNode": "true"},
                                    {"shareIdle": "true", "step": "month"},
                                    {"shareIdle": "true", "shareNamespaces": "kube-system", "shareSplit": "even"}],
                         ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_a_shared_answers_memory_does_not_grow_with_the_window(reader, monkeypatch, params):
    """Issue 25, item 6: a tenant whose pods are renamed every hour has pods x hours groups. Python's peak
    while the answer streams is the reader's page and at most ``MAX_PARTS`` parts, whatever the window: 4 times the
    hours, not 4 times the memory (both made small here so that both windows pass them)."""
    monkeypatch.setattr(clickhouse_client, "FIRST_PAGE_ROWS", 500)
    monkeypatch.setattr(allocation, "MAX_PARTS", 500)
    request = allocation.parse_request({"aggregate": "pod", "step": "window", **params})
    end = H0 + 3600
    python_peak(reader, request, end - 3600, end)  # imports and caches warm
    rows, peak = python_peak(reader, request, end - 12 * 3600, end)
    rows_4x, peak_4x = python_peak(reader, request, end - 48 * 3600, end)
    assert (rows, rows_4x) == (12 * 100, 48 * 100)  # every pod of every hour, once
    assert peak_4x < 1.5 * peak, (peak, peak_4x)
