"""``api/`` (``read/metroculus.py`` over HTTP): the read API against data the real pipeline wrote (simulator ->
Prometheus -> worker -> chDB), served by uvicorn on loopback and called the way Metroculus clients call it; plus
schema-driven fuzzing."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
import uuid
from urllib.parse import urlencode

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from kubecost_worker.api.app import create_app
from kubecost_worker.api.server import server_options
from kubecost_worker.errors import TransientError
from kubecost_worker.devtools.localprom import free_port
from kubecost_worker.store.ledger import RunRecord, RunStatus
from kubecost_worker.hours import now, utc
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.store.client import ReadClients
from kubecost_worker.wiring import ApiThread

from .helpers import pipeline_written

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
SECRET = "s3cret-cluster-key"
TENANTS = ["api-tenant-a", "api-tenant-b"]
HOURS = 4
END = int(time.time()) // 3600 * 3600
START = END - HOURS * 3600
PREFIX = "/metroculus/v2"


class Served:
    def __init__(self, sink: ClickHouseSink, reader=None):
        self.sink = sink
        self.reader = reader or ReadClients(sink.url)
        self.app = create_app(self.reader, SECRET)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    **server_options()))  # as `serve` runs it
        self.api = ApiThread(self.server, threading.Thread(target=self.server.run, daemon=True))
        self.api.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started

    def stop(self):
        self.api.stop(5)  # the app's shutdown closes its reader: chDB opens one path per process

    def sql(self, sql: str, **params):
        return self.sink.query(sql, params)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with pipeline_written(tmp_path_factory.mktemp("api"), TENANTS, START, HOURS, pods=12, seed=5) as sink:
        served = Served(sink)
        yield served
        served.stop()


class MetroculusClient:
    """Written the way existing Metroculus clients are: requests, Secret and Content-type headers on every
    call, the query built with urlencode(doseq=True) after dropping None values."""

    def __init__(self, url: str, secret: str | None):
        self.url, self.secret = url, secret

    def get(self, endpoint: str, secret: str | None = ..., **params):
        headers = {"Content-type": "application/json"}
        secret = self.secret if secret is ... else secret
        if secret is not None:
            headers["Secret"] = secret
        query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        response = requests.get(f"{self.url}{PREFIX}/{endpoint}?{query}", headers=headers, timeout=30)
        return response.status_code, response.json()


@pytest.fixture(scope="module")
def client(served):
    return MetroculusClient(served.url, SECRET)


def window(tenant=TENANTS[0], **more):
    return {"cloud_account_id": tenant, "start_date": START, "end_date": END, **more}


def test_cluster_costs_agree_with_sql_to_the_cent(served, client):
    status, body = client.get("kubecost_cluster_costs", **window())
    assert status == 200
    (total,), = served.sql("SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String}",
                           t=TENANTS[0])
    assert total > 0 and abs(body["total_cost"] - total) < 0.005
    assert body["total_cost"] == pytest.approx(sum(p["value"] for p in body["data_points"]), rel=1e-12)
    assert body["summary"]["total_cost"] == body["total_cost"]
    parts = {k: v for k, v in body["summary"].items() if k != "total_cost"}
    assert body["total_cost"] == pytest.approx(sum(parts.values()), rel=1e-12)
    per_hour = served.sql("SELECT toUnixTimestamp(hour), any(cluster_id), sum(total_cost) FROM k8s_expenses_current "
                          "WHERE cloud_account_id = {t:String} GROUP BY 1 ORDER BY 1", t=TENANTS[0])
    assert [(p["timestamp"], p["labels"]["cluster_id"]) for p in body["data_points"]] == [(h, c) for h, c, _ in per_hour]
    assert [p["value"] for p in body["data_points"]] == pytest.approx([v for *_, v in per_hour], rel=1e-12)
    (idle,), = served.sql("SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String} "
                          "AND namespace = '__idle__'", t=TENANTS[0])
    assert body["summary"]["idle_cost"] == pytest.approx(idle) and body["summary"]["management_cost"] > 0
    assert {k: body[k] for k in ("cloud_account_id", "start_date", "end_date")} == window()
    # CloudTuner's breakdown beside the summary: management, load balancers, network by egress class
    (zone, region, internet), = served.sql(
        "SELECT sum(network_zone_cost), sum(network_region_cost), sum(network_internet_cost) FROM k8s_expenses_current "
        "WHERE cloud_account_id = {t:String}", t=TENANTS[0])
    assert body["breakdown"] == pytest.approx({
        "management_cost": body["summary"]["management_cost"],
        "load_balancer_cost": body["summary"]["load_balancer_cost"],
        "network_internet_cost": internet, "network_region_cost": region, "network_zone_cost": zone})
    assert list(body["breakdown"]) == ["management_cost", "load_balancer_cost", "network_internet_cost",
                                       "network_region_cost", "network_zone_cost"]


def test_kubecost_metrics_all_and_filtered(served, client):
    status, body = client.get("kubecost_metrics", **window())
    assert status == 200
    counts = dict(served.sql("SELECT metric, count() FROM kubecost_metrics_current WHERE cloud_account_id = {t:String} "
                             "GROUP BY metric", t=TENANTS[0]))
    assert {name: len(points) for name, points in body["metrics"].items()} == counts
    texts = served.sql("SELECT metric, point_json FROM kubecost_metrics_current WHERE cloud_account_id = {t:String} "
                       "ORDER BY metric, hour, point_json", t=TENANTS[0])  # each point as it was written
    assert body["metrics"] == {m: [json.loads(text) for metric, text in texts if metric == m] for m in counts}
    assert "kubecost_cluster_management_cost" in counts and "kubecost_savings_cpu_allocation" in counts
    for points in body["metrics"].values():
        stamps = [p["timestamp"] for p in points]
        assert stamps == sorted(stamps) and all(s % 3600 == 0 and START <= s < END for s in stamps)
    wanted = ["kubecost_load_balancer_cost", "kubecost_cluster_management_cost"]
    for metrics in (",".join(wanted), wanted):  # comma-separated, or repeated as doseq sends a list
        status, body = client.get("kubecost_metrics", **window(metrics=metrics))
        assert status == 200 and sorted(body["metrics"]) == sorted(wanted)
    (price,), = served.sql("SELECT avg(value) FROM kubecost_metrics_current WHERE cloud_account_id = {t:String} "
                           "AND metric = 'kubecost_cluster_management_cost'", t=TENANTS[0])
    assert [p["value"] for p in body["metrics"]["kubecost_cluster_management_cost"]] == pytest.approx([price] * HOURS)


def test_savings(served, client):
    status, body = client.get("kubecost_savings", **window())
    assert status == 200
    for key, metric in (("cpu_savings", "kubecost_savings_cpu_allocation"),
                        ("memory_savings", "kubecost_savings_memory_allocation_bytes")):
        rows = served.sql("SELECT toUnixTimestamp(hour), value, labels['daemonset'] FROM kubecost_metrics_current "
                          "WHERE cloud_account_id = {t:String} AND metric = {m:String} ORDER BY 1, 3",
                          t=TENANTS[0], m=metric)
        assert len(rows) == 2 * HOURS
        assert sorted((p["timestamp"], p["labels"]["daemonset"]) for p in body[key]) == [(h, d) for h, _, d in rows]
        assert sorted(p["value"] for p in body[key]) == pytest.approx(sorted(v for _, v, _ in rows))


SPECIAL = "('__idle__', '__cluster_management__', '__unmounted__')"


def named(column: str) -> str:
    """A property as OpenCost names it: rows that are no pod's by their namespace, missing ones __unallocated__."""
    return f"multiIf(namespace IN {SPECIAL}, namespace, {column} = '', '__unallocated__', {column})"


# aggregate -> {field of the answer: the same grouping written in SQL here}
BREAKDOWNS = {
    "namespace": {"namespace": "namespace"},
    "workload": {"namespace": "namespace", "controllerKind": named("workload_kind"),
                 "controller": f"multiIf(namespace IN {SPECIAL}, namespace, workload_name = '__unallocated__', "
                               "workload_name, concat(workload_kind, ':', workload_name))"},
    "pod": {"pod": named("pod")},
    "node": {"node": "if(node = '', '__unallocated__', node)"},
    "cluster": {"cluster": "cluster_id"},
    "namespace,container,service": {"namespace": "namespace", "container": named("container"),
                                    "service": named("service")},
}


@pytest.mark.parametrize("aggregate", sorted(BREAKDOWNS))
@pytest.mark.parametrize("step", ["hour", "day", "window"])
def test_k8s_expenses_breakdowns_add_up(served, client, aggregate, step):
    dimensions = BREAKDOWNS[aggregate]
    status, body = client.get("k8s_expenses", **window(aggregate=aggregate, step=step))
    assert status == 200 and body["rows"]
    (total, cpu), = served.sql("SELECT sum(total_cost), sum(cpu_cost) FROM k8s_expenses_current "
                               "WHERE cloud_account_id = {t:String}", t=TENANTS[0])
    assert sum(r["total_cost"] for r in body["rows"]) == pytest.approx(total, rel=1e-9)
    assert sum(r["cpu_cost"] for r in body["rows"]) == pytest.approx(cpu, rel=1e-9)
    groups = served.sql(f"SELECT DISTINCT {', '.join(dimensions.values())} FROM k8s_expenses_current "
                        f"WHERE cloud_account_id = {{t:String}}", t=TENANTS[0])
    assert {tuple(r[d] for d in dimensions) for r in body["rows"]} == set(groups)
    stamps = [r["timestamp"] for r in body["rows"]]
    assert stamps == sorted(stamps)
    if step == "hour":
        assert set(stamps) == set(range(START, END, 3600))
    if step == "window":
        assert set(stamps) == {START}


@pytest.mark.parametrize("aggregate, step", [("pod", "hour"), ("node", "hour"), ("workload", "day"),
                                             ("label:team", "hour")])
def test_a_breakdown_asked_in_pieces_is_the_same_answer(served, client, monkeypatch, aggregate, step):
    """Per-hour and per-day breakdowns of k8s_expenses are grouped in pieces of about ROWS_PER_PIECE rows (memory
    follows the piece, not the window): cut small, the answer is the same, in the same order."""
    from kubecost_worker.read import metroculus

    whole = client.get("k8s_expenses", **window(aggregate=aggregate, step=step))[1]
    rows_per_hour = served.sql("SELECT max(rows_written) FROM k8s_expense_runs WHERE cloud_account_id = {t:String}",
                               t=TENANTS[0])[0][0]
    monkeypatch.setattr(metroculus, "ROWS_PER_PIECE", rows_per_hour)  # one hour a piece
    assert len(metroculus.window_pieces(served.reader, TENANTS[0], START, END, "hour")) == HOURS
    cut = client.get("k8s_expenses", **window(aggregate=aggregate, step=step))[1]
    # the same rows in the same order; sums to the last bits only: ClickHouse adds a group's rows in the order its
    # threads meet them, which differs between one query and several
    def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
        return ([{k: v for k, v in r.items() if not isinstance(v, float)} for r in rows],
                [{k: v for k, v in r.items() if isinstance(v, float)} for r in rows])

    (cut_keys, cut_sums), (whole_keys, whole_sums) = split(cut["rows"]), split(whole["rows"])
    assert cut_keys == whole_keys and cut_sums == [pytest.approx(sums, rel=1e-12) for sums in whole_sums]
    assert {k: v for k, v in cut.items() if k != "rows"} == {k: v for k, v in whole.items() if k != "rows"}
    assert len(whole["rows"]) > HOURS


def test_k8s_expenses_by_label_and_namespace(served, client):
    status, body = client.get("k8s_expenses", **window(aggregate="label:team"))
    assert status == 200
    by_team = dict(served.sql(f"SELECT multiIf(namespace IN {SPECIAL}, namespace, mapContains(labels, 'team'), "
                              "labels['team'], '__unallocated__'), sum(total_cost) FROM k8s_expenses_current "
                              "WHERE cloud_account_id = {t:String} GROUP BY 1", t=TENANTS[0]))
    assert {r["label:team"]: r["total_cost"] for r in body["rows"]} == pytest.approx(by_team)
    assert "__idle__" in by_team
    status, body = client.get("k8s_expenses", **window(aggregate="namespace,pod", namespace="data"))
    assert status == 200 and body["rows"] and {r["namespace"] for r in body["rows"]} == {"data"}


@pytest.mark.parametrize("endpoint, extra", [("kubecost_metrics", {}), ("kubecost_cluster_costs", {}),
                                             ("kubecost_savings", {}), ("k8s_expenses", {"aggregate": "namespace"})])
def test_the_error_contract(served, client, endpoint, extra):
    def expect(status, code, params, **kwargs):
        got_status, body = client.get(endpoint, **kwargs)
        assert got_status == status, body
        assert body == {"error": {"status_code": status, "error_code": code, "reason": body["error"]["reason"],
                                  "params": params}}
        return body["error"]["reason"]

    assert expect(401, "OM0007", [], secret=None, **window(**extra)) == "This resource requires authorization"
    assert expect(401, "OM0007", [], secret="", **window(**extra)) == "This resource requires authorization"
    assert expect(403, "OM0005", [], secret="wrong", **window(**extra)) == "Bad secret"
    assert expect(401, "OM0007", [], secret=None) == "This resource requires authorization"  # auth comes first
    for name in ("cloud_account_id", "start_date", "end_date"):
        params = {k: v for k, v in window(**extra).items() if k != name}
        assert expect(400, "OM0008", [name], **params) == f"{name} is not provided"
    # as Metroculus's own unit tests have it: an empty id is missing, an empty date is invalid
    assert expect(400, "OM0008", ["cloud_account_id"], **window(**extra, cloud_account_id="")) \
        == "cloud_account_id is not provided"
    for name, bad in (("start_date", ""), ("end_date", ""), ("start_date", "abc"), ("start_date", "1.5"),
                      ("start_date", "-1"), ("end_date", "1e9"), ("start_date", "2026-01-01"),
                      ("start_date", "+5"), ("end_date", "1" * 20)):
        assert expect(400, "OM0006", [name], **{**window(**extra), name: bad}) == f"Invalid {name}"
    expect(400, "OM0006", ["end_date"], **window(**extra, start_date=END, end_date=START))  # end before start
    for start, end in ((0, 86400), (0, END), (0, 10**18), (" 0", f"{END} ")):  # no window limit; blanks stripped
        status, body = client.get(endpoint, **window(**extra, start_date=start, end_date=end))
        assert status == 200, body
        assert (body["start_date"], body["end_date"]) == (int(start), int(end))
    status, body = client.get(endpoint, **window("tenant-with-no-data", **extra))
    assert status == 200
    if endpoint == "kubecost_cluster_costs":
        assert body["total_cost"] == 0 and body["data_points"] == [] and set(body["summary"].values()) == {0}
        assert set(body["breakdown"].values()) == {0}
    elif endpoint == "kubecost_metrics":
        assert body["metrics"] == {}
    elif endpoint == "kubecost_savings":
        assert body["cpu_savings"] == [] and body["memory_savings"] == []
    else:
        assert body["rows"] == []


ANSWERS = {"kubecost_metrics": lambda b: b["metrics"], "kubecost_savings": lambda b: (b["cpu_savings"], b["memory_savings"]),
           "kubecost_cluster_costs": lambda b: (b["total_cost"], b["data_points"], b["summary"], b["breakdown"]),
           "k8s_expenses": lambda b: b["rows"]}


@pytest.mark.parametrize("endpoint", sorted(ANSWERS))
def test_the_window_selects_the_hours_it_overlaps(served, client, endpoint):
    """[t, t) overlaps no hour; a window from 0 to far beyond the last hour is the whole stored history, no more
    (bounded by the data, not by the nominal window)."""
    extra = {"aggregate": "pod", "step": "hour"} if endpoint == "k8s_expenses" else {}
    whole = ANSWERS[endpoint](client.get(endpoint, **window(**extra))[1])
    for start, end in ((0, 2**62), (START - 86400 * 365, END + 1)):
        assert ANSWERS[endpoint](client.get(endpoint, **window(**extra, start_date=start, end_date=end))[1]) == whole
    one_hour = ANSWERS[endpoint](client.get(endpoint, **window(**extra, start_date=START + 1800,
                                                               end_date=START + 1801))[1])
    empty = ANSWERS[endpoint](client.get(endpoint, **window("tenant-with-no-data", **extra))[1])
    assert one_hour != empty and one_hour != whole
    for t in (START, START + 1800, END):
        status, body = client.get(endpoint, **window(**extra, start_date=t, end_date=t))
        assert status == 200 and ANSWERS[endpoint](body) == empty, (t, body)


def cloudtuner_cluster_total(cost_data: dict) -> float | None:
    """What CloudTuner's REST API (its expense controller, after the Phase 2 pricing fix) takes from a
    kubecost_cluster_costs answer: summary.total_cost when there is a summary, else the top-level total; the
    cluster is kept only when that is above 0 (None: dropped)."""
    if "summary" in cost_data:
        total = cost_data.get("summary", {}).get("total_cost", 0)
    else:
        total = cost_data.get("total_cost", 0)
    return total if total > 0 else None


def test_cloudtuner_keeps_every_cluster_with_its_cost(served, client):
    for tenant in TENANTS:
        status, body = client.get("kubecost_cluster_costs", **window(tenant))
        (total,), = served.sql("SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String}",
                               t=tenant)
        assert status == 200 and cloudtuner_cluster_total(body) == pytest.approx(total, rel=1e-12) and total > 0
        assert set(body["summary"]) >= {"total_cost", "management_cost", "load_balancer_cost", "network_cost",
                                        "cpu_cost", "ram_cost", "pv_cost"}
    assert cloudtuner_cluster_total(client.get("kubecost_cluster_costs", **window("tenant-with-no-data"))[1]) is None


def test_bodies_are_streamed_in_chunks(served):
    """A long answer goes out chunked (no Content-Length: never assembled first) and reads back whole."""
    response = requests.get(f"{served.url}{PREFIX}/kubecost_metrics", params=window(), headers={"Secret": SECRET},
                            stream=True, timeout=30)
    assert response.status_code == 200 and response.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.headers
    body = json.loads(b"".join(response.iter_content(None)))
    assert body["metrics"] and body["cloud_account_id"] == TENANTS[0]


@pytest.mark.parametrize("endpoint, extra", [("kubecost_metrics", {}), ("kubecost_savings", {}),
                                             ("k8s_expenses", {"aggregate": "pod", "step": "hour"})])
def test_an_answer_past_its_first_page_is_streamed_whole(served, client, monkeypatch, endpoint, extra):
    """Reads answer their first FIRST_PAGE_ROWS rows from one plain query and stream the rest from that offset:
    cut small, the body is the same, in the same order."""
    from kubecost_worker.store import client as clickhouse_client

    whole = client.get(endpoint, **window(**extra))[1]
    monkeypatch.setattr(clickhouse_client, "FIRST_PAGE_ROWS", 3)
    assert client.get(endpoint, **window(**extra))[1] == whole


class FailingReader:
    """Fault injection: a reader whose stream yields ``rows_before`` rows of a metric's texts, then fails as
    ClickHouse going away does."""

    def __init__(self, rows_before: int):
        self.rows_before = rows_before

    def query(self, sql, parameters=None, strings_as_bytes=False):
        raise TransientError("ClickHouse unavailable while querying: connection refused")

    def stream(self, sql, parameters=None, strings_as_bytes=False):
        for hour in range(self.rows_before):
            yield b"kubecost_x", json.dumps([{"timestamp": hour * 3600, "value": 1.0, "labels": {"x": "y" * 100}}]
                                            * 20)[1:-1].encode()
        raise TransientError("ClickHouse unavailable while querying: connection reset")


def test_a_value_no_json_can_hold_is_an_error_body_not_a_plain_page(served, client):
    """A NaN cost stored before the commit check existed (written here past it, into the real store): the
    answer is the error shape with 500, never a plain-text page nor invalid JSON."""
    run = RunRecord("nan-tenant", START, uuid.uuid4(), RunStatus.SUCCEEDED, "test", started_at=now(),
                    finished_at=now())
    served.sink.client.insert("k8s_expenses", [["nan-tenant", "c1", utc(START), "default", "deployment", "api", "p1",
                                                "n1", math.nan, run.run_id]],
                              column_names=["cloud_account_id", "cluster_id", "hour", "namespace", "workload_kind",
                                            "workload_name", "pod", "node", "cpu_cost", "run_id"])
    served.sink.record(run)
    status, body = client.get("kubecost_cluster_costs", **window("nan-tenant"))
    assert status == 500 and body == {"error": {"status_code": 500, "error_code": "OM0001",
                                                "reason": "Internal error", "params": []}}


def test_a_nan_cannot_reach_a_response_body():
    from kubecost_worker.api.app import json_pieces

    with pytest.raises(ValueError):
        b"".join(json_pieces({"total_cost": math.nan}))
    assert json.loads(b"".join(json_pieces({"total_cost": 1.5}))) == {"total_cost": 1.5}


def test_an_unreachable_clickhouse_is_a_503(served):
    """A real refused connection (no server on the port), not an injected one."""
    down = Served(served.sink, ReadClients(f"http://127.0.0.1:{free_port()}/default"))
    try:
        for endpoint, extra in (("kubecost_metrics", {}), ("kubecost_cluster_costs", {}),
                                ("k8s_expenses", {"aggregate": "pod", "step": "hour"})):
            response = requests.get(f"{down.url}{PREFIX}/{endpoint}", params=window(**extra),
                                    headers={"Secret": SECRET}, timeout=60)
            assert response.status_code == 503 and response.json()["error"]["error_code"] == "OM0001", endpoint
    finally:
        down.stop()


@pytest.mark.parametrize("rows_before, endpoint", [(0, "kubecost_metrics"), (0, "kubecost_cluster_costs"),
                                                   (5000, "kubecost_metrics")])
def test_a_storage_failure_is_a_503_before_the_body_and_a_cut_connection_after(served, rows_before, endpoint):
    failing = Served(served.sink, FailingReader(rows_before))
    try:
        response = requests.get(f"{failing.url}{PREFIX}/{endpoint}", params=window(), headers={"Secret": SECRET},
                                stream=True, timeout=30)
        if rows_before == 0:
            assert response.status_code == 503
            assert response.json()["error"] == {"status_code": 503, "error_code": "OM0001",
                                                "reason": "Service unavailable", "params": []}
        else:  # the status line is out: the body breaks off instead of ending as shorter, valid JSON
            assert response.status_code == 200
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                b"".join(response.iter_content(None))
    finally:
        failing.stop()


def test_unknown_paths_methods_and_parameters(served, client):
    status, body = client.get("no_such_endpoint", **window())
    assert (status, body["error"]["error_code"], body["error"]["reason"]) == (404, "OM0002", "Not found")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = requests.request(method, f"{served.url}{PREFIX}/kubecost_cluster_costs",
                                    headers={"Secret": SECRET}, timeout=10)
        assert response.status_code == 405
        assert response.json()["error"] == {"status_code": 405, "error_code": "OM0003",
                                            "reason": f"{method} method not allowed", "params": [method]}
    for path in ("kubecost_cluster_costs/", "kubecost_metrics//"):  # no redirect (a Location from the Host header)
        response = requests.get(f"{served.url}{PREFIX}/{path}", params=window(), allow_redirects=False,
                                headers={"Secret": SECRET, "Host": "evil.example"}, timeout=10)
        assert response.status_code == 404 and "location" not in response.headers
        assert response.json()["error"]["error_code"] == "OM0002"
    assert client.get("kubecost_metrics", **window(metrics="bad name!"))[1]["error"]["params"] == ["metrics"]
    assert client.get("k8s_expenses", **window(aggregate="everything"))[1]["error"]["error_code"] == "OM0006"
    assert client.get("k8s_expenses", **window(aggregate="label:bad-key"))[1]["error"]["params"] == ["aggregate"]
    assert client.get("k8s_expenses", **window(aggregate="pod", step="year"))[1]["error"]["params"] == ["step"]
    assert client.get("k8s_expenses", **window())[1]["error"] == {
        "status_code": 400, "error_code": "OM0008", "reason": "aggregate is not provided", "params": ["aggregate"]}
    openapi = requests.get(f"{served.url}{PREFIX}/openapi.json", timeout=10).json()
    assert {f"{PREFIX}/{e}" for e in ("kubecost_metrics", "kubecost_cluster_costs", "kubecost_savings",
                                      "k8s_expenses", "k8s_rightsizing", "k8s_assets", "k8s_clusters")} \
        == set(openapi["paths"])


def test_tenants_are_isolated(served, client):
    """No parameter combination returns another tenant's rows; ids that look like SQL or patterns match nothing."""
    a = client.get("kubecost_cluster_costs", **window(TENANTS[0]))[1]
    b = client.get("kubecost_cluster_costs", **window(TENANTS[1]))[1]
    assert a["total_cost"] != b["total_cost"]
    for tenant in TENANTS:
        (total,), = served.sql("SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String}",
                               t=tenant)
        assert client.get("kubecost_cluster_costs", **window(tenant))[1]["total_cost"] == pytest.approx(total)
        for aggregate in ("namespace", "workload", "pod", "node", "cluster", "label:team"):
            rows = client.get("k8s_expenses", **window(tenant, aggregate=aggregate))[1]["rows"]
            assert sum(r["total_cost"] for r in rows) == pytest.approx(total, rel=1e-9)
        clusters = {p["labels"]["cluster_id"] for p in client.get("kubecost_cluster_costs", **window(tenant))[1]["data_points"]}
        assert clusters == {f"{tenant}-cluster"}
    for hostile in ("api-tenant-a' OR '1'='1", "%", "api-tenant-%", ".*", "api-tenant-a\x00", "*",
                    "') OR 1=1 --", "api-tenant-a' UNION SELECT"):
        for endpoint in ("kubecost_cluster_costs", "kubecost_metrics", "kubecost_savings"):
            status, body = client.get(endpoint, **window(hostile))
            assert status == 200 and not body.get("data_points") and not body.get("metrics") \
                and not body.get("cpu_savings") and not body.get("total_cost"), (hostile, endpoint)
        status, body = client.get("k8s_expenses", **window(hostile, aggregate="pod"))
        assert status == 200 and body["rows"] == []


def test_fuzzing_finds_no_server_error_and_no_response_off_its_schema(served):
    """Schema-driven (schemathesis, from the app's own OpenAPI document): every endpoint with generated
    parameters, called with the right Secret and without it; no 5xx, every response fits its schema."""
    from hypothesis import given
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_asgi(f"{PREFIX}/openapi.json", served.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7
    calls = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.headers = {**(case.headers or {}), "Secret": SECRET}
            # end_date >= start_date is a rule across parameters that a schema cannot state: a generated
            # request may break it and get its 400, which is right
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            calls.append((case.path, response.status_code))
            case.headers.pop("Secret")
            response = case.call()
            assert response.status_code == 401 and response.json()["error"]["error_code"] == "OM0007"

        check()
    assert len(calls) >= len(operations) * 30
    # the generated requests reach the data, not only the error paths
    assert {path for path, status in calls if status == 200} == {op.path for op in operations}


# -- what the server refuses before any parameter is read, and which storage errors are whose -------------------

TOO_LONG = {"error": {"status_code": 414, "error_code": "OM0006", "reason": "Invalid request", "params": ["request"]}}


def read_reply(sock: socket.socket) -> tuple[bytes, bytes]:
    """The status line and headers, and the body, of a reply read until the server closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def test_a_request_too_long_for_the_server_gets_the_error_body(served):
    """Past the server's buffer uvicorn itself would answer a plain-text 400. The app sees every request whose
    target (path and query) is within 64 KiB; a longer one is 414 with the error body, whichever layer refuses it."""
    def get(query: str) -> requests.Response:
        return requests.get(f"{served.url}{PREFIX}/kubecost_cluster_costs?{query}", headers={"Secret": SECRET},
                            timeout=30)

    response = get(urlencode(window()) + "&unknown=" + "a" * 60_000)  # within the limit: the app reads it
    assert response.status_code == 200 and response.json()["total_cost"] > 0
    for size in (70_000, 100_000):
        response = get(urlencode(window()) + "&filter=" + "a" * size)
        assert (response.status_code, response.json()) == (414, TOO_LONG), size
    # a request line never finished, past the server's buffer: refused by the HTTP layer, in the same shape, and
    # read whole (a 1 MB one still being sent when the answer goes out gets it, not a reset connection)
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(b"GET " + PREFIX.encode() + b"/kubecost_metrics?unknown=" + b"a" * 1_000_000)
        head, body = read_reply(sock)
    assert head.startswith(b"HTTP/1.1 414 ") and b"content-type: application/json" in head.lower(), head
    assert json.loads(body) == TOO_LONG
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:  # not HTTP at all
        sock.sendall(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
        head, body = read_reply(sock)
    assert head.startswith(b"HTTP/1.1 400 ") and json.loads(body) == {
        "error": {"status_code": 400, "error_code": "OM0006", "reason": "Invalid request", "params": ["request"]}}


# ClickHouse's error codes by whose fault they are (kubecost_worker.store.client.classified decides, once):
# the store unavailable or overloaded is 503 OM0001 (clients retry); anything else, above all our own query
# rejected (its syntax, size, names or types), is 500 OM0001 "Internal error" (retrying cannot help).
UNAVAILABLE_CODES = {76: "CANNOT_OPEN_FILE", 159: "TIMEOUT_EXCEEDED", 202: "TOO_MANY_SIMULTANEOUS_QUERIES",
                     203: "NO_FREE_CONNECTION", 209: "SOCKET_TIMEOUT", 210: "NETWORK_ERROR",
                     241: "MEMORY_LIMIT_EXCEEDED", 242: "TABLE_IS_READ_ONLY", 243: "NOT_ENOUGH_SPACE",
                     252: "TOO_MANY_PARTS", 279: "ALL_CONNECTION_TRIES_FAILED", 439: "CANNOT_SCHEDULE_TASK",
                     999: "KEEPER_EXCEPTION"}
OUR_FAULT_CODES = {43: "ILLEGAL_TYPE_OF_ARGUMENT", 47: "UNKNOWN_IDENTIFIER", 53: "TYPE_MISMATCH", 60: "UNKNOWN_TABLE",
                   62: "SYNTAX_ERROR", 167: "TOO_DEEP_AST", 168: "TOO_BIG_AST", 306: "TOO_DEEP_RECURSION",
                   396: "TOO_MANY_ROWS_OR_BYTES"}
UNAVAILABLE = {"status_code": 503, "error_code": "OM0001", "reason": "Service unavailable", "params": []}
INTERNAL = {"status_code": 500, "error_code": "OM0001", "reason": "Internal error", "params": []}


def test_which_clickhouse_errors_are_a_503_and_which_a_500(served, monkeypatch):
    """Fault injection where the errors enter: clickhouse-connect's client raising what it raises."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    from kubecost_worker.store import client as clickhouse_client

    assert set(UNAVAILABLE_CODES) == clickhouse_client.TRANSIENT_CODES
    assert not set(OUR_FAULT_CODES) & clickhouse_client.TRANSIENT_CODES
    raised: list[Exception] = []

    class FaultyClient:
        def query(self, *args, **kwargs):
            raise raised[-1]

        query_row_block_stream = query

        def close(self):
            pass

    monkeypatch.setattr(clickhouse_client, "connect", lambda url: FaultyClient())
    faulty = Served(served.sink, ReadClients("chdb://never-opened"))
    cases = [(DatabaseError(f"Code: {code}. DB::Exception: injected. ({name})"), UNAVAILABLE)
             for code, name in UNAVAILABLE_CODES.items()]
    cases += [(DatabaseError(f"Code: {code}. DB::Exception: injected. ({name})"), INTERNAL)
              for code, name in OUR_FAULT_CODES.items()]
    cases += [(OperationalError("HTTPConnectionPool: Connection refused"), UNAVAILABLE),
              (DatabaseError("Unable to open the chdb engine: /data/ch is locked"), UNAVAILABLE)]
    try:
        for error, expected in cases:
            raised.append(error)
            for endpoint, extra in (("kubecost_cluster_costs", {}), ("k8s_expenses", {"aggregate": "pod"})):
                response = requests.get(f"{faulty.url}{PREFIX}/{endpoint}", params=window(**extra),
                                        headers={"Secret": SECRET}, timeout=30)
                assert (response.status_code, response.json()) == (expected["status_code"], {"error": expected}), \
                    (endpoint, str(error))
    finally:
        faulty.stop()


def test_a_query_clickhouse_rejects_is_a_500_not_a_503(served, monkeypatch):
    """A real rejection by chDB: with the filter's limits lifted, 4,000 clauses make SQL past ClickHouse's
    max_query_size (code 62, SYNTAX_ERROR): our query's fault, not the store's, so no client should retry it."""
    from kubecost_worker.read import allocation
    from kubecost_worker.api import app

    monkeypatch.setitem(app.MAX_LENGTH, "filter", 10**6)
    monkeypatch.setattr(allocation, "MAX_FILTER_CLAUSES", 10**6)
    query = urlencode(window(aggregate="pod")) + "&filter=" + "+".join(["pod~:%22a%22"] * 4000)  # 52 kB
    response = requests.get(f"{served.url}{PREFIX}/k8s_expenses?{query}", headers={"Secret": SECRET}, timeout=60)
    assert (response.status_code, response.json()) == (500, {"error": INTERNAL})
