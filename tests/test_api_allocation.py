"""``api/``'s allocation endpoints (``read/allocation.py`` over HTTP) on data the real pipeline wrote (simulator ->
Prometheus -> worker -> chDB), served by uvicorn: multi-aggregation, filters, steps and sharing against SQL over
``k8s_expenses_current`` (totals conserved to 1e-9), efficiency against the efficiency view, rightsizing against the
simulator's ground truth, CSV against JSON."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections import defaultdict
from urllib.parse import urlencode

import pytest
import requests

from kubecost_worker.read import allocation
from kubecost_worker.api.app import create_app
from kubecost_worker.read import sharing

from .helpers import pipeline_written
from .test_api import PREFIX, SECRET, MetroculusClient, Served

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
TENANT = "alloc-tenant"
HOURS = 3
END = int(time.time()) // 3600 * 3600
START = END - HOURS * 3600
SPECIAL = "('__idle__', '__cluster_management__', '__unmounted__')"
REL = 1e-9


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("allocation")
    with pipeline_written(root, [TENANT], START, HOURS, pods=30, seed=11) as sink:
        served = Served(sink)
        served.truth = [json.loads(line) for line in (root / "sim" / "ground_truth.jsonl").read_text().splitlines()
                        if line]
        yield served
        served.stop()


@pytest.fixture(scope="module")
def client(store):
    return MetroculusClient(store.url, SECRET)


def get(client, **params) -> list[dict]:
    status, body = client.get("k8s_expenses", cloud_account_id=TENANT, start_date=START, end_date=END, **params)
    assert status == 200, body
    return body["rows"]


def stored_total(store, where: str = "1") -> float:
    return store.sql(f"SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {{t:String}} "
                     f"AND {where}", t=TENANT)[0][0]


SHARINGS = [
    {"shareIdle": "true"},
    {"shareIdle": "true", "idleByNode": "true"},
    {"shareNamespaces": "kube-system,monitoring"},
    {"shareNamespaces": "kube-system", "shareSplit": "even", "shareTenancyCosts": "true"},
    {"shareLabels": "team:platform,env:staging", "shareIdle": "true"},
    {"shareTenancyCosts": "true", "shareIdle": "true", "idleByNode": "true", "shareNamespaces": "batch"},
]


@pytest.mark.parametrize("shares", SHARINGS, ids=lambda s: "&".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("aggregate, step", [("namespace", "hour"), ("controller,label:team", "window"),
                                             ("node,container", "day")])
def test_sharing_never_changes_the_total(store, client, shares, aggregate, step):
    rows = get(client, aggregate=aggregate, step=step, **shares)
    assert math.fsum(r["total_cost"] for r in rows) == pytest.approx(stored_total(store), rel=REL)
    own = math.fsum(r["cpu_cost"] + r["ram_cost"] + r["gpu_cost"] + r["pv_cost"] + r["network_cost"] + r["lb_cost"]
                    + r["management_cost"] for r in rows)
    assert math.fsum(r["shared_cost"] + r["idle_cost"] for r in rows) == pytest.approx(stored_total(store) - own,
                                                                                      rel=REL)
    names = {value for r in rows for key, value in r.items() if key.split(":")[0] in aggregate}
    if "shareNamespaces" in shares and "namespace" in aggregate:
        assert not names & set(shares["shareNamespaces"].split(","))
    if shares.get("shareIdle") == "true":
        # idle of CPU and RAM always has a receiver here; what may stay is GPU idle on a node no GPU pod uses
        assert all(r["cpu_cost"] == 0 and r["ram_cost"] == 0 for r in rows if "__idle__" in r.values())
    if shares.get("shareTenancyCosts") == "true":
        assert "__cluster_management__" not in names


def test_idle_shared_by_cluster_is_sql_over_the_stored_rows(store, client):
    """Each hour's CPU, RAM and GPU idle over the namespaces by their cost of the resource, written in SQL here."""
    expected = defaultdict(float)
    for hour, namespace, share in store.sql(f"""
        WITH pods AS (SELECT hour, namespace, sum(cpu_cost) AS cpu, sum(ram_cost) AS ram, sum(gpu_cost) AS gpu
                      FROM k8s_expenses_current WHERE cloud_account_id = {{t:String}}
                        AND namespace NOT IN ('__idle__', '__cluster_management__') GROUP BY hour, namespace),
             idle AS (SELECT hour, sum(cpu_cost) AS cpu, sum(ram_cost) AS ram, sum(gpu_cost) AS gpu
                      FROM k8s_expenses_current WHERE cloud_account_id = {{t:String}} AND namespace = '__idle__'
                      GROUP BY hour),
             totals AS (SELECT hour, sum(cpu) AS cpu, sum(ram) AS ram, sum(gpu) AS gpu FROM pods GROUP BY hour)
        SELECT toUnixTimestamp(p.hour), p.namespace,
               if(t.cpu > 0, i.cpu * p.cpu / t.cpu, 0) + if(t.ram > 0, i.ram * p.ram / t.ram, 0)
               + if(t.gpu > 0, i.gpu * p.gpu / t.gpu, 0)
        FROM pods AS p INNER JOIN idle AS i ON p.hour = i.hour INNER JOIN totals AS t ON p.hour = t.hour""",
                                            t=TENANT):
        expected[(hour, namespace)] += share
    rows = get(client, aggregate="namespace", step="hour", shareIdle="true")
    got = {(r["timestamp"], r["namespace"]): r["idle_cost"] for r in rows if r["namespace"] != "__idle__"}
    assert set(got) >= set(expected) and sum(v > 0 for v in got.values()) >= 5
    for key, value in got.items():
        assert value == pytest.approx(expected.get(key, 0.0), rel=REL, abs=1e-12), key


def test_a_filtered_row_gets_what_it_gets_unfiltered(store, client):
    shares = {"shareIdle": "true", "shareNamespaces": "kube-system", "shareTenancyCosts": "true"}
    whole = {(r["namespace"], r["controller"]): r for r in get(client, aggregate="namespace,controller", **shares)}
    filtered = get(client, aggregate="namespace,controller", filter='namespace:"data","frontend"', **shares)
    assert filtered and {r["namespace"] for r in filtered} == {"data", "frontend"}
    for row in filtered:
        twin = whole[(row["namespace"], row["controller"])]
        assert row["shared_cost"] == pytest.approx(twin["shared_cost"], rel=REL)
        assert row["idle_cost"] == pytest.approx(twin["idle_cost"], rel=REL)
        assert row["total_cost"] == pytest.approx(twin["total_cost"], rel=REL)


@pytest.mark.parametrize("expression, where", [
    ('namespace:"data"', "namespace = 'data'"),
    ('namespace!:"data","frontend"+controllerKind:"deployment"',
     "namespace NOT IN ('data', 'frontend') AND workload_kind = 'deployment'"),
    ('controllerName~:"api","web"', "(startsWith(workload_name, 'api') OR startsWith(workload_name, 'web'))"),
    ('label[team]:"web" container!:""', "labels['team'] = 'web' AND container != ''"),
    ('node~:"gke" service:"backend"', "startsWith(node, 'gke') AND service = 'backend'"),
])
def test_filters_select_what_sql_selects(store, client, expression, where):
    rows = get(client, aggregate="controller,label:team", filter=expression)
    expected = dict(store.sql(
        f"SELECT multiIf(namespace IN {SPECIAL}, namespace, workload_name = '__unallocated__', workload_name, "
        "concat(workload_kind, ':', workload_name)) || '/' || multiIf(namespace IN " + SPECIAL + ", namespace, "
        "mapContains(labels, 'team'), labels['team'], '__unallocated__'), sum(total_cost) "
        f"FROM k8s_expenses_current WHERE cloud_account_id = {{t:String}} AND {where} GROUP BY 1", t=TENANT))
    assert {f"{r['controller']}/{r['label:team']}": r["total_cost"] for r in rows} == pytest.approx(expected, rel=REL)
    if "label[team]" in expression:
        assert expected


def test_several_dimensions_group_like_sql(store, client):
    rows = get(client, aggregate="cluster,namespace,pod,container", step="hour")
    expected = store.sql(
        f"SELECT toUnixTimestamp(hour), cluster_id, namespace, multiIf(namespace IN {SPECIAL}, namespace, pod = '', "
        f"'__unallocated__', pod), multiIf(namespace IN {SPECIAL}, namespace, container = '', '__unallocated__', "
        "container), sum(total_cost), sum(cpu_usage_core_hours) FROM k8s_expenses_current "
        "WHERE cloud_account_id = {t:String} GROUP BY ALL", t=TENANT)
    got = {(r["timestamp"], r["cluster"], r["namespace"], r["pod"], r["container"]): (r["total_cost"],
                                                                                       r["cpu_usage_core_hours"])
           for r in rows}
    assert len(got) == len(rows) == len(expected)
    for *key, total, usage in expected:
        assert got[tuple(key)][0] == pytest.approx(total, rel=REL)
        assert (got[tuple(key)][1] is None) == (usage is None)
    # within each hour: highest total first
    for hour in {r["timestamp"] for r in rows}:
        totals = [r["total_cost"] for r in rows if r["timestamp"] == hour]
        assert totals == sorted(totals, reverse=True)


def test_efficiency_per_namespace_hour_is_the_views(store, client):
    view = {(h, ns): (c, r, t) for h, ns, c, r, t in store.sql(
        "SELECT toUnixTimestamp(hour), namespace, cpu_efficiency, ram_efficiency, total_efficiency "
        "FROM k8s_expenses_efficiency_current WHERE cloud_account_id = {t:String}", t=TENANT)}
    rows = get(client, aggregate="namespace", step="hour")
    assert len(rows) == len(view)
    for r in rows:
        for got, want in zip((r["cpu_efficiency"], r["ram_efficiency"], r["total_efficiency"]),
                             view[(r["timestamp"], r["namespace"])]):
            assert (got is None and want is None) or got == pytest.approx(want, rel=1e-12)
    assert any(r["cpu_efficiency"] is not None and 0 < r["cpu_efficiency"] for r in rows)
    data = next(r for r in rows if r["namespace"] == "data")
    assert data["cpu_request_average_cores"] == pytest.approx(data["cpu_request_core_hours"])  # one hour
    assert data["cpu_usage_average_cores"] == pytest.approx(data["cpu_usage_core_hours"])


def test_weeks_start_on_monday_and_months_on_the_first(store, client):
    for step in ("week", "month"):
        rows = get(client, aggregate="namespace", step=step)
        assert math.fsum(r["total_cost"] for r in rows) == pytest.approx(stored_total(store), rel=REL)
        for stamp in {r["timestamp"] for r in rows}:
            moment = time.gmtime(stamp)
            assert moment.tm_hour == 0 and moment.tm_min == 0
            assert (moment.tm_wday == 0) if step == "week" else (moment.tm_mday == 1)
            assert stamp <= START < stamp + (7 if step == "week" else 31) * 86400 or stamp > START


def raw_get(store, endpoint: str, **params) -> requests.Response:
    query = urlencode({"cloud_account_id": TENANT, "start_date": START, "end_date": END, **params})
    return requests.get(f"{store.url}{PREFIX}/{endpoint}?{query}", headers={"Secret": SECRET}, timeout=30)


@pytest.mark.parametrize("endpoint, params", [
    ("k8s_expenses", {"aggregate": "namespace,label:team", "step": "hour", "shareIdle": "true"}),
    ("k8s_rightsizing", {"algorithm": "quantile", "q": "0.5"})])
def test_csv_has_the_json_rows(store, endpoint, params):
    rows = raw_get(store, endpoint, **params).json()["rows"]
    response = raw_get(store, endpoint, format="csv", **params)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == list(rows[0]) and len(table) == len(rows) + 1
    for line, row in zip(table[1:], rows):
        for text, value in zip(line, row.values()):
            if value is None:
                assert text == ""
            elif isinstance(value, float):
                # two queries: ClickHouse may add a group's rows in another order (the last bits)
                assert float(text) == pytest.approx(value, rel=1e-12)
            else:
                assert text == str(value)


def expected_rightsizing(truth: list[dict], statistic, target_cpu=0.7, target_ram=0.8) -> dict[tuple, dict]:
    """Recommendations computed from the simulator's own usage maxima per container-hour."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in truth:
        if row["container"] and row["namespace"] not in ("__idle__", "__cluster_management__", "__unmounted__"):
            groups[(row["namespace"], row["workload_kind"], row["workload_name"], row["container"])].append(row)
    answer = {}
    for key, rows in groups.items():
        running = sum(r["running_minutes"] for r in rows) / 60
        if running <= 0:
            continue
        cpu = [r["cpu_usage_max_cores"] for r in rows if r["cpu_usage_max_cores"] is not None]
        ram = [r["ram_usage_max_bytes"] for r in rows if r["ram_usage_max_bytes"] is not None]
        recommended_cpu = max(statistic(cpu) / target_cpu, 0.010) if cpu else None
        recommended_ram = max(statistic(ram) / target_ram, 20 * 2**20) if ram else None
        answer[key] = {"current_cpu": sum(r["cpu_request_core_hours"] for r in rows) / running,
                       "current_memory": sum(r["ram_request_byte_hours"] for r in rows) / running,
                       "recommended_cpu": recommended_cpu, "recommended_memory": recommended_ram}
    return answer


@pytest.mark.parametrize("params, statistic", [
    ({}, max),
    ({"algorithm": "quantile", "q": "0.9", "targetCPUUtilization": "0.5", "targetRAMUtilization": "0.6"},
     lambda values: sharing.quantile(values, 0.9)),
    ({"algorithm": "quantile", "q": "0.25", "targetCPUUtilization": "1", "targetRAMUtilization": "1"},
     lambda values: sharing.quantile(values, 0.25))])
def test_rightsizing_follows_the_simulators_usage(store, client, params, statistic):
    status, body = client.get("k8s_rightsizing", cloud_account_id=TENANT, start_date=START, end_date=END, **params)
    assert status == 200
    targets = (float(params.get("targetCPUUtilization", 0.7)), float(params.get("targetRAMUtilization", 0.8)))
    expected = expected_rightsizing(store.truth, statistic, *targets)
    got = {(r["namespace"], r["controllerKind"], r["controller"], r["container"]): r for r in body["rows"]}
    assert set(got) == set(expected) and len(got) > 5
    for key, want in expected.items():
        for name, value in want.items():
            assert (got[key][name] is None) == (value is None), (key, name)
            if value is not None:
                assert got[key][name] == pytest.approx(value, rel=REL), (key, name)
    savings = [r["saving"] for r in body["rows"] if r["saving"] is not None]
    assert savings == sorted(savings, reverse=True) and any(s < 0 for s in savings)
    if params.get("q") == "0.25":  # the simulated usage is drawn from a fifth of the request to 1.5 times it
        assert any(s > 0 for s in savings)
    row = next(r for r in body["rows"] if r["cpu_saving"] is not None and r["recommended_cpu"] != r["current_cpu"])
    prices = store.sql("SELECT sum(cpu_cost) / sum(cpu_core_hours), sum(running_minutes) / 60 FROM "
                       "k8s_expenses_current WHERE cloud_account_id = {t:String} AND namespace = {n:String} "
                       "AND workload_name = {w:String} AND container = {c:String}", t=TENANT, n=row["namespace"],
                       w=row["controller"], c=row["container"])[0]
    assert row["cpu_saving"] == pytest.approx((row["current_cpu"] - row["recommended_cpu"]) * prices[0] * 730
                                              * row["replicas"], rel=REL)


@pytest.mark.parametrize("endpoint, params, name", [
    ("k8s_expenses", {"aggregate": "namespace", "filter": 'namespace:data'}, "filter"),
    ("k8s_expenses", {"aggregate": "namespace", "filter": 'owner:"x"'}, "filter"),
    ("k8s_expenses", {"aggregate": "namespace", "shareIdle": "sometimes"}, "shareIdle"),
    ("k8s_expenses", {"aggregate": "namespace", "shareSplit": "random"}, "shareSplit"),
    ("k8s_expenses", {"aggregate": "namespace", "shareLabels": "team"}, "shareLabels"),
    ("k8s_expenses", {"aggregate": "namespace", "format": "xml"}, "format"),
    ("k8s_expenses", {"aggregate": "namespace,nothing"}, "aggregate"),
    ("k8s_rightsizing", {"targetCPUUtilization": "0"}, "targetCPUUtilization"),
    ("k8s_rightsizing", {"q": "1.5"}, "q"),
    ("k8s_rightsizing", {"algorithm": "median"}, "algorithm"),
    ("k8s_rightsizing", {"format": "pdf"}, "format"),
])
def test_bad_values_are_om0006_naming_the_parameter(client, endpoint, params, name):
    status, body = client.get(endpoint, cloud_account_id=TENANT, start_date=START, end_date=END, **params)
    assert status == 400 and body["error"]["error_code"] == "OM0006" and body["error"]["params"] == [name]


def sent_as_written(store, endpoint: str, query: str) -> requests.Response:
    """A request whose own parameters go exactly as written after the window (urlencode would encode each +)."""
    window = urlencode({"cloud_account_id": TENANT, "start_date": START, "end_date": END})
    return requests.get(f"{store.url}{PREFIX}/{endpoint}?{window}&{query}", headers={"Secret": SECRET}, timeout=30)


def body_of(response: requests.Response):
    """The body, JSON or CSV (its lines, numbers read as floats)."""
    def number_or_text(field: str):
        try:
            return float(field)
        except ValueError:
            return field

    if response.headers["content-type"].startswith("text/csv"):
        return [[number_or_text(field) for field in line] for line in csv.reader(io.StringIO(response.text))]
    return response.json()


def approximately(value):
    """``value`` with its figures to the last bits only (another query's SQL may add a group's rows in another
    order), everything else exactly."""
    if isinstance(value, dict):
        return {k: approximately(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approximately(v) for v in value]
    return pytest.approx(value, rel=1e-12) if isinstance(value, float) else value


# (endpoint, the query with each + sent as is, the same with each + encoded, what both mean)
SENT_EITHER_WAY = [
    ("k8s_expenses", "aggregate=namespace&filter=namespace:%22shop%22++namespace:%22shop%22",
     "aggregate=namespace&filter=namespace:%22shop%22%2B%2Bnamespace:%22shop%22",
     {"aggregate": "namespace", "filter": 'namespace:"shop"'}),
    ("k8s_expenses", "aggregate=namespace&filter=namespace:%22data%22++controllerKind:%22statefulset%22",
     "aggregate=namespace&filter=namespace:%22data%22%2B%2BcontrollerKind:%22statefulset%22",
     {"aggregate": "namespace", "filter": 'namespace:"data"+controllerKind:"statefulset"'}),
    ("k8s_expenses", "aggregate=namespace&filter=+namespace:%22data%22",
     "aggregate=namespace&filter=%2Bnamespace:%22data%22", {"aggregate": "namespace", "filter": 'namespace:"data"'}),
    ("k8s_expenses", "aggregate=namespace&filter=+", "aggregate=namespace&filter=%2B", {"aggregate": "namespace"}),
]
# (endpoint, the query with its blanks sent as +, the same with them sent as %20, what both mean)
BLANKS_EITHER_WAY = [
    ("k8s_expenses", "aggregate=namespace&shareIdle=+", "aggregate=namespace&shareIdle=%20",
     {"aggregate": "namespace"}),
    ("k8s_expenses", "aggregate=namespace&shareIdle=+true", "aggregate=namespace&shareIdle=%20true",
     {"aggregate": "namespace", "shareIdle": "true"}),
    ("k8s_expenses", "aggregate=namespace&step=+day", "aggregate=namespace&step=%20day",
     {"aggregate": "namespace", "step": "day"}),
    ("k8s_expenses", "aggregate=+namespace,label:team+&shareSplit=even+&shareNamespaces=+kube-system&format=+csv",
     "aggregate=%20namespace,label:team%20&shareSplit=even%20&shareNamespaces=%20kube-system&format=%20csv",
     {"aggregate": "namespace,label:team", "shareSplit": "even", "shareNamespaces": "kube-system", "format": "csv"}),
    ("k8s_expenses", "aggregate=namespace&namespace=+&step=+&shareSplit=+&format=+",
     "aggregate=namespace&namespace=%20&step=%20&shareSplit=%20&format=%20", {"aggregate": "namespace"}),
    ("k8s_rightsizing", "algorithm=+quantile&q=0.9+&targetCPUUtilization=+", "algorithm=%20quantile&q=0.9%20"
     "&targetCPUUtilization=%20", {"algorithm": "quantile", "q": "0.9"}),
]


@pytest.mark.parametrize("endpoint, as_is, encoded, meaning", SENT_EITHER_WAY + BLANKS_EITHER_WAY)
def test_a_value_means_the_same_sent_as_is_or_encoded(store, endpoint, as_is, encoded, meaning):
    """A + between filter clauses (or before or after them) sent as is reads as a blank, encoded as a +: both join
    clauses. Blanks around any value are stripped, and a value that is only blanks is as if absent."""
    meant = raw_get(store, endpoint, **meaning)
    assert meant.status_code == 200, meant.text
    for query in (as_is, encoded):
        response = sent_as_written(store, endpoint, query)
        assert response.status_code == 200, (query, response.text)
        assert body_of(response) == approximately(body_of(meant)), query


def test_a_blank_aggregate_is_not_provided_whether_its_blanks_are_encoded_or_not(store):
    for query in ("aggregate=", "aggregate=+", "aggregate=%20", "aggregate=+%20%09"):
        response = sent_as_written(store, "k8s_expenses", query)
        assert (response.status_code, response.json()) == (400, {"error": {
            "status_code": 400, "error_code": "OM0008", "reason": "aggregate is not provided",
            "params": ["aggregate"]}}), query


def test_rightsizing_needs_authorization_and_a_window(client):
    status, body = client.get("k8s_rightsizing", secret=None, cloud_account_id=TENANT, start_date=START, end_date=END)
    assert status == 401 and body["error"]["error_code"] == "OM0007"
    status, body = client.get("k8s_rightsizing", cloud_account_id=TENANT, start_date=START)
    assert status == 400 and body["error"] == {"status_code": 400, "error_code": "OM0008",
                                               "reason": "end_date is not provided", "params": ["end_date"]}


# -- limits: every documented length limit enforced where the parameter is read, as OM0006 naming it ---------

DOCUMENT = create_app(None, SECRET).openapi()
# (endpoint, parameter, maxLength) for every query parameter whose length the OpenAPI document limits
LIMITED = sorted({(path.rsplit("/", 1)[1], p["name"], p["schema"]["maxLength"])
                  for path, item in DOCUMENT["paths"].items() for p in item["get"]["parameters"]
                  if p["in"] == "query" and "maxLength" in p["schema"]})


def valid_of_length(name: str, length: int) -> str:
    """A value of ``name`` that is valid but for its length, of exactly ``length`` characters."""
    return {"cloud_account_id": "a" * length, "metrics": "a" * length, "aggregate": "label:" + "a" * (length - 6),
            "filter": 'pod:"' + "a" * (length - 6) + '"', "namespace": "a" * length,
            "shareNamespaces": ("kube-system," * length)[:length], "shareLabels": "k:" + "v" * (length - 2),
            "cluster": "c" * length}[name]


def test_every_free_text_parameter_has_a_documented_length_limit():
    free_text = {"cloud_account_id", "metrics", "aggregate", "filter", "namespace", "shareNamespaces", "shareLabels",
                 "cluster"}
    assert {name for _, name, _ in LIMITED} == free_text
    assert {endpoint for endpoint, name, _ in LIMITED if name == "cloud_account_id"} == {
        "kubecost_metrics", "kubecost_cluster_costs", "kubecost_savings", "k8s_expenses", "k8s_rightsizing",
        "k8s_assets", "k8s_clusters"}


@pytest.mark.parametrize("endpoint, name, limit", LIMITED)
def test_a_value_past_its_documented_length_is_om0006_naming_it(client, endpoint, name, limit):
    base = {"cloud_account_id": TENANT, "start_date": START, "end_date": END,
            **({"aggregate": "namespace"} if endpoint == "k8s_expenses" else {})}
    status, body = client.get(endpoint, **{**base, name: valid_of_length(name, limit)})
    assert status == 200, body
    status, body = client.get(endpoint, **{**base, name: valid_of_length(name, limit + 1)})
    assert (status, body) == (400, {"error": {"status_code": 400, "error_code": "OM0006", "reason": f"Invalid {name}",
                                              "params": [name]}})


def padded_filter(clauses: int, length: int, clause: str = 'pod~:"{}"') -> str:
    """``clauses`` clauses (``pod~:"a..."`` by default) joined by ``+``, values padded to ``length`` characters."""
    room = length - clauses * len(clause.format("")) - (clauses - 1)
    return "+".join(clause.format("a" * (room // clauses + (i < room % clauses))) for i in range(clauses))


def test_a_long_filter_is_om0006_never_a_503(client):
    """3,500 clauses (31 kB) would reach ClickHouse and fail its max_query_size (code 62), which must be no 503
    (clients retry those). The filter is bounded in length and in clauses; a filter at both limits answers."""
    most = allocation.MAX_FILTER_CLAUSES
    at_limit = padded_filter(most, 4096, 'namespace!:"{}"')  # none of these namespaces: every row
    assert len(at_limit) == 4096
    whole = {r["namespace"]: r["total_cost"] for r in get(client, aggregate="namespace")}
    assert {r["namespace"]: r["total_cost"] for r in get(client, aggregate="namespace", filter=at_limit)} \
        == pytest.approx(whole, rel=REL)
    assert get(client, aggregate="pod", filter=padded_filter(most, 4095)) == []  # no pod starts with "aaa..."
    for bad in ("+".join(['pod~:"a"'] * 3500), padded_filter(10, 4097), padded_filter(most + 1, (most + 1) * 9)):
        status, body = client.get("k8s_expenses", cloud_account_id=TENANT, start_date=START, end_date=END,
                                  aggregate="pod", filter=bad)
        assert (status, body) == (400, {"error": {"status_code": 400, "error_code": "OM0006",
                                                  "reason": "Invalid filter", "params": ["filter"]}}), len(bad)
