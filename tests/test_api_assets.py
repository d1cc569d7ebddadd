"""``k8s_assets`` and ``k8s_clusters`` (``read/assets.py`` over HTTP) and the dashboard's list-against-billed panel, on
a reconciled store: the simulator's EKS clusters through Prometheus and the pipeline into chDB, their FOCUS bill
(``devtools/bill.py``) loaded, one tenant billed by the hour, one by the day (its lines stretched to the day, as
Azure bills), one never reconciled. Answers are checked against the bill's ground truth, the factors table and the
reconciled view; hostile parameters get their error codes."""

from __future__ import annotations

import calendar
import csv
import io
import math
import time
from decimal import Decimal

import pytest

from kubecost_worker.config import load_config
from kubecost_worker.devtools.bill import COLUMNS, as_eks, write_focus_bill
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks
from kubecost_worker.devtools.simulation import simulate
from kubecost_worker.hours import hour_starts
from kubecost_worker.pipeline import run_hours
from kubecost_worker.store import migrations
from kubecost_worker.store.bill import load_bill, source_of
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.store.reconcile import reconcile_days
from kubecost_worker.wiring import build_pipeline

from .helpers import ch_client
from .test_api import SECRET, MetroculusClient, Served
from .test_dashboards import boards, expand_macros, interpolate, queries_by_title
from .test_store_bill import raw_fields
from .test_store_reconcile import BILL, first_hour

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
DAY, HOUR, HOURS = 86400, 3600, 4
HOURLY, DAILY, UNRECONCILED = "t-hourly", "t-daily", "t-unreconciled"
REL = 1e-9


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b), 1.0)


def stretched_to_the_day(path, ids: set[str], out) -> None:
    """The bill with the lines of ``ids`` charged to the end of their UTC day, as a daily bill's are."""
    at = {name: i for i, name in enumerate(COLUMNS)}
    lines = path.read_text().splitlines(keepends=True)
    for number, line in enumerate(lines[1:], start=1):
        fields = raw_fields(line.rstrip("\n"))
        if fields[at["ResourceId"]].strip('"') in ids:
            start = calendar.timegm(time.strptime(fields[at["ChargePeriodStart"]].strip('"'), "%Y-%m-%d %H:%M:%S"))
            day_end = (start // DAY + 1) * DAY
            fields[at["ChargePeriodEnd"]] = f'"{time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(day_end))}"'
            lines[number] = ",".join(fields) + "\n"
    out.write_text("".join(lines))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Three tenants' EKS clusters over 4 hours across a midnight; the bill of the first hourly, of the second
    daily, both reconciled; the third's bill loaded but never reconciled. Served over HTTP."""
    root = tmp_path_factory.mktemp("assets")
    start = first_hour()
    sim = as_eks(simulate([HOURLY, DAILY, UNRECONCILED], start, HOURS, nodes=3, pods=12, seed=11))
    sim.write_openmetrics(root / "metrics.om")
    create_blocks(root / "metrics.om", root / "tsdb")
    prometheus = LocalPrometheus(root / "tsdb")
    url = f"chdb://{root / 'ch'}"
    config = load_config({"KCW_THANOS_URL": prometheus.start(), "KCW_CLICKHOUSE_URL": url})
    path, truth = write_focus_bill(sim, root / "bill.csv")
    daily_ids = {rid for (tenant, _, _), rid in truth["resource_ids"].items() if tenant == DAILY}
    daily_ids |= {rid for tenant, rid in truth["foreign"] if tenant == DAILY}
    stretched_to_the_day(path, daily_ids, root / "daily.csv")
    try:
        with ch_client(url) as client:
            migrations.migrate(client)
            sink = ClickHouseSink(client, url=url)
            tenants = [HOURLY, DAILY, UNRECONCILED]
            assert run_hours(build_pipeline(config, sink), tenants,
                             hour_starts(start, start + HOURS * HOUR)).failed == 0
            prometheus.stop()
            load_bill(client, [source_of(str(root / "daily.csv"))])
            assert len(reconcile_days(client, BILL, [HOURLY, DAILY], start, start + HOURS * HOUR)) == 4
            served = Served(sink)
            served.start, served.truth = start, truth
            yield served
            served.stop()
    finally:
        prometheus.stop()


@pytest.fixture(scope="module")
def api(store):
    return MetroculusClient(store.url, SECRET)


def window(store, tenant: str, **more) -> dict:
    return {"cloud_account_id": tenant, "start_date": store.start, "end_date": store.start + HOURS * HOUR, **more}


def assets(store, api, tenant: str, **more) -> list[dict]:
    status, body = api.get("k8s_assets", **window(store, tenant, **more))
    assert status == 200, body
    return body["rows"]


def test_hourly_assets_hold_the_bill_per_node_hour_and_volume_hour(store, api):
    rows = assets(store, api, HOURLY)
    truth = store.truth
    ids = {(kind, name): rid for (tenant, kind, name), rid in truth["resource_ids"].items() if tenant == HOURLY}
    unbilled = {(kind, name) for tenant, kind, name in truth["unbilled"] if tenant == HOURLY}
    factors = {(kind, name, hour): (modelled, factor) for kind, name, hour, modelled, factor in store.sql(
        "SELECT kind, resource, toUnixTimestamp(hour), modelled_cost, factor FROM k8s_reconciled_factors_current "
        "WHERE cloud_account_id = {t:String} AND kind IN ('node', 'volume')", t=HOURLY)}
    assert {r["type"] for r in rows} == {"node", "volume"} and len(rows) == len(factors)
    for r in rows:
        key = (r["type"], r["name"])
        assert r["period_end"] - r["timestamp"] == HOUR and r["hours"] == 1 and r["reconciled"]
        modelled, factor = factors[(r["type"], r["name"], r["timestamp"])]
        assert close(r["list_cost"], modelled) and r["factor"] == factor
        assert close(r["adjustment"], r["billed_cost"] - r["list_cost"])
        if key in ids:
            expected = float(truth["totals"][(ids[key], r["timestamp"])]["EffectiveCost"])
            assert r["matched"] and close(r["billed_cost"], expected) and r["bill_lines"] >= 1, r
            assert r["providerID"].endswith(ids[key])
        else:
            assert key in unbilled or not r["providerID"], r  # no line, or no provider id to match
            assert not r["matched"] and r["factor"] == 1 and r["billed_cost"] == r["list_cost"] == modelled
    assert sum(r["matched"] for r in rows) == HOURS * len(ids)
    stamps = [r["timestamp"] for r in rows]
    assert stamps == sorted(stamps) and set(stamps) == set(range(store.start, store.start + HOURS * HOUR, HOUR))


def test_a_daily_bill_answers_one_row_per_resource_and_day(store, api):
    rows = assets(store, api, DAILY)
    truth = store.truth
    ids = {(kind, name): rid for (tenant, kind, name), rid in truth["resource_ids"].items() if tenant == DAILY}
    days = sorted({store.start // DAY * DAY, store.start // DAY * DAY + DAY})
    matched = [r for r in rows if r["matched"]]
    assert {(r["type"], r["name"], r["timestamp"]) for r in matched} == {(*key, day) for key in ids for day in days}
    for r in matched:
        assert r["period_end"] == r["timestamp"] + DAY and r["hours"] == 2  # two hours of the window each day
        expected = sum((total["EffectiveCost"] for (rid, hour), total in truth["totals"].items()
                        if rid == ids[(r["type"], r["name"])] and r["timestamp"] <= hour < r["period_end"]),
                       Decimal(0))
        assert close(r["billed_cost"], float(expected)) and close(r["billed_cost"], r["list_cost"] * r["factor"])
    assert all(r["period_end"] - r["timestamp"] == HOUR and r["factor"] == 1 for r in rows if not r["matched"])
    # a window holding one hour of each day: the same periods and factors, the hours inside
    status, body = api.get("k8s_assets", **window(store, DAILY, start_date=store.start + HOUR,
                                                  end_date=store.start + 3 * HOUR, type="node"))
    cut = {(r["name"], r["timestamp"]): r for r in body["rows"] if r["matched"]}
    assert status == 200 and {r["type"] for r in body["rows"]} == {"node"}
    assert set(cut) == {(r["name"], r["timestamp"]) for r in matched if r["type"] == "node"}
    for r in matched:
        if r["type"] == "node":
            part = cut[(r["name"], r["timestamp"])]
            assert part["hours"] == 1 and part["factor"] == r["factor"] and part["list_cost"] < r["list_cost"]


def test_an_unreconciled_tenant_answers_list_costs_with_factor_1(store, api):
    rows = assets(store, api, UNRECONCILED)
    assert rows and all(not r["matched"] and not r["reconciled"] and r["factor"] == 1 and r["bill_lines"] == 0
                        and r["billed_cost"] == r["list_cost"] and r["adjustment"] == 0
                        and r["period_end"] - r["timestamp"] == HOUR for r in rows)
    nodes = dict(((node, hour), cost) for node, hour, cost in store.sql(
        "SELECT node, toUnixTimestamp(hour), allocated_cost + idle_cost FROM k8s_nodes_hourly_current "
        "WHERE cloud_account_id = {t:String}", t=UNRECONCILED))
    assert {(r["name"], r["timestamp"]): r["list_cost"] for r in rows if r["type"] == "node"} == nodes
    row, = api.get("k8s_clusters", **window(store, UNRECONCILED))[1]["rows"]
    (listed,), = store.sql("SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String}",
                           t=UNRECONCILED)
    assert row == {"cluster": f"{UNRECONCILED}-cluster", "list_cost": pytest.approx(listed, rel=REL),
                   "reconciled_cost": None, "matched_list_cost": 0, "matched_billed_cost": 0}


@pytest.mark.parametrize("tenant", [HOURLY, DAILY])
def test_clusters_cost_at_list_and_reconciled_as_the_view_has_them(store, api, tenant):
    status, body = api.get("k8s_clusters", **window(store, tenant))
    assert status == 200
    expected = {cluster: (listed, billed) for cluster, listed, billed in store.sql(
        "SELECT cluster_id, sum(total_cost_list), sum(total_cost) FROM k8s_expenses_reconciled_current "
        "WHERE cloud_account_id = {t:String} GROUP BY cluster_id", t=tenant)}
    assert {r["cluster"] for r in body["rows"]} == set(expected)
    for r in body["rows"]:
        listed, billed = expected[r["cluster"]]
        assert close(r["list_cost"], listed) and close(r["reconciled_cost"], billed) and not close(listed, billed)
        assets_of = [a for a in assets(store, api, tenant) if a["cluster"] == r["cluster"] and a["matched"]]
        assert close(r["matched_list_cost"], math.fsum(a["list_cost"] for a in assets_of))
        assert close(r["matched_billed_cost"], math.fsum(a["billed_cost"] for a in assets_of))


def test_the_dashboard_draws_list_against_billed_per_day(store):
    sql = queries_by_title(boards()["costs"])["List against billed cost per day"]
    clusters = [c for c, in store.sql("SELECT DISTINCT cluster_id FROM k8s_expenses_current")]
    for tenant in (HOURLY, UNRECONCILED):
        expanded = expand_macros(interpolate(sql, {"tenant": [tenant], "cluster": clusters}), store.start,
                                 store.start + HOURS * HOUR - 1, 3600)
        drawn = list(store.sink.client.query(expanded).named_results())
        expected = {day: (listed, billed) for day, listed, billed in store.sql(
            "SELECT toStartOfDay(hour), sum(total_cost_list), sum(total_cost) FROM k8s_expenses_reconciled_current "
            "WHERE cloud_account_id = {t:String} GROUP BY 1", t=tenant)}
        assert len(drawn) == 2 and {d["time"] for d in drawn} == set(expected)
        for d in drawn:
            listed, billed = expected[d["time"]]
            assert close(d["list"], listed) and close(d["billed"], billed)
            assert (d["list"] == d["billed"]) == (tenant == UNRECONCILED)


def test_csv_holds_the_json_rows(store, api):
    import requests

    rows = assets(store, api, HOURLY)
    response = requests.get(f"{store.url}/metroculus/v2/k8s_assets", params=window(store, HOURLY, format="csv"),
                            headers={"Secret": SECRET}, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(response.text)))
    assert len(lines) == len(rows) and list(lines[0]) == list(rows[0])
    assert all(line["matched"] == ("true" if row["matched"] else "false") and float(line["billed_cost"])
               == row["billed_cost"] for line, row in zip(lines, rows))


@pytest.mark.parametrize("endpoint", ["k8s_assets", "k8s_clusters"])
def test_the_error_contract(store, api, endpoint):
    def expect(status, code, params, secret=..., **asked):
        got, body = api.get(endpoint, secret=secret, **asked)
        assert (got, body["error"]["error_code"], body["error"]["params"]) == (status, code, params), body

    good = window(store, HOURLY)
    expect(401, "OM0007", [], secret=None, **good)
    expect(403, "OM0005", [], secret="wrong", **good)
    for name in ("cloud_account_id", "start_date", "end_date"):
        expect(400, "OM0008", [name], **{k: v for k, v in good.items() if k != name})
    for name, bad in (("start_date", "-1"), ("end_date", "1e9"), ("start_date", "1" * 20),
                      ("cloud_account_id", "t" * 257), ("format", "xml")):
        expect(400, "OM0006", [name], **{**good, name: bad})
    expect(400, "OM0006", ["end_date"], **{**good, "start_date": good["end_date"], "end_date": good["start_date"]})
    if endpoint == "k8s_assets":
        for bad in ("nodes", "disk", "node,volume", "'; DROP TABLE k8s_expenses --"):
            expect(400, "OM0006", ["type"], **{**good, "type": bad})
        expect(400, "OM0006", ["cluster"], **{**good, "cluster": "c" * 257})
        assert api.get(endpoint, **{**good, "cluster": "x' OR '1'='1"})[1]["rows"] == []
        whole = api.get(endpoint, **good)[1]["rows"]
        assert api.get(endpoint, **{**good, "type": " ", "cluster": " "})[1]["rows"] == whole  # blank: absent
    for hostile in ("t-hourly' OR '1'='1", "%", "t-%", ".*", "') OR 1=1 --", "t-hourly\x00"):
        status, body = api.get(endpoint, **{**good, "cloud_account_id": hostile})
        assert status == 200 and body["rows"] == [], hostile
    for start, end in ((0, 2**62), (good["start_date"], good["start_date"])):  # no limit; an empty window
        status, body = api.get(endpoint, **{**good, "start_date": start, "end_date": end})
        assert status == 200 and (body["rows"] == []) == (start == end)


def test_the_openapi_document_describes_both(store):
    import requests

    document = requests.get(f"{store.url}/metroculus/v2/openapi.json", timeout=10).json()
    for path in ("k8s_assets", "k8s_clusters"):
        operation = document["paths"][f"/metroculus/v2/{path}"]["get"]
        parameters = {p["name"]: p for p in operation["parameters"]}
        assert {"cloud_account_id", "start_date", "end_date", "Secret", "format"} <= set(parameters)
        assert parameters["cloud_account_id"]["required"] and parameters["cloud_account_id"]["schema"]["maxLength"]
    parameters = {p["name"]: p for p in document["paths"]["/metroculus/v2/k8s_assets"]["get"]["parameters"]}
    assert parameters["cluster"]["schema"]["maxLength"] == 256
    assert parameters["type"]["schema"]["pattern"] == "^(node|volume)$"
    rows = document["components"]["schemas"]["AssetRow"]["properties"]
    assert set(rows) == {"timestamp", "period_end", "type", "cluster", "name", "providerID", "hours", "list_cost",
                         "billed_cost", "adjustment", "factor", "matched", "reconciled", "bill_lines"}
