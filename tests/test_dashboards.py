"""The Grafana dashboards the chart ships (``deploy/helm/kubecost-worker/dashboards``): linted as JSON, then every
panel's and template variable's SQL run against chDB on pipeline-written simulated data, with Grafana's variables
and the ClickHouse plugin's macros expanded as they are (``expand``: the plugin's ``pkg/macros`` rules), checked
for the columns its panel type needs and, for the figures the SQL cookbook also has, for the same numbers."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from pathlib import Path

import pytest

from .helpers import pipeline_written

DASHBOARDS = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "kubecost-worker" / "dashboards"
DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "${datasource}"}
# the plugin's macros (pkg/macros/macros.go) and Grafana's global variables the panels may use
MACROS = {"fromTime", "toTime", "fromTime_ms", "toTime_ms", "timeFilter", "timeFilter_ms", "dateFilter",
          "dateTimeFilter", "dt", "timeInterval", "timeInterval_ms", "interval_s"}
PANEL_TYPES = {"timeseries", "stat", "table", "barchart"}
VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
MACRO = re.compile(r"\$__(\w+)(?:\(([^()]*)\))?")
CURRENT_RUN_RULE = re.compile(r"\bk8s_expense_current_runs\b|argMax\(run_id")


def boards() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


# -- the plugin's macros and Grafana's variables ------------------------------------------------------------------

def expand_macros(sql: str, start: int, end: int, interval_seconds: int) -> str:
    """The ClickHouse plugin's macro expansion (its pkg/macros/macros.go): seconds-precision DateTimes in UTC."""

    def date(t: int) -> str:
        return f"toDate('{dt.datetime.fromtimestamp(t, dt.timezone.utc):%Y-%m-%d}')"

    def one(match: re.Match) -> str:
        name, args = match.group(1), [a.strip().strip("'\"") for a in (match.group(2) or "").split(",") if a.strip()]
        expansions = {
            "fromTime": lambda: f"toDateTime({start})", "toTime": lambda: f"toDateTime({end})",
            "fromTime_ms": lambda: f"fromUnixTimestamp64Milli({start * 1000})",
            "toTime_ms": lambda: f"fromUnixTimestamp64Milli({end * 1000})",
            "timeFilter": lambda: f"{args[0]} >= toDateTime({start}) AND {args[0]} <= toDateTime({end})",
            "dateFilter": lambda: f"{args[0]} >= {date(start)} AND {args[0]} <= {date(end)}",
            "timeInterval": lambda: f"toStartOfInterval(toDateTime({args[0]}), INTERVAL {max(interval_seconds, 1)} second)",
            "interval_s": lambda: str(max(interval_seconds, 1)),
        }
        assert name in expansions, f"macro $__{name} is not expanded here (add it, as the plugin does)"
        return expansions[name]()

    return MACRO.sub(one, sql)


def interpolate(sql: str, values: dict[str, list[str]]) -> str:
    """Grafana's variable interpolation (before the query reaches the plugin): ``${v}``, ``$v``, and the
    ``singlequote`` and ``csv`` formats of multi-value variables (All: every option, as without an allValue)."""

    def one(match: re.Match) -> str:
        name = match.group(1) or match.group(3)
        if name.startswith("__"):
            return match.group(0)  # a macro, for the plugin
        assert name in values, f"${name} is not a variable of the dashboard"
        chosen, fmt = values[name], match.group(2)
        if fmt == "singlequote":
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in chosen)
        assert fmt in (None, "csv"), f"format {fmt} not expected"
        return ",".join(chosen)

    return VARIABLE.sub(one, sql)


def test_expansion_follows_the_plugin():
    assert expand_macros("WHERE $__timeFilter(hour) AND t < $__toTime", 10, 20, 60) == (
        "WHERE hour >= toDateTime(10) AND hour <= toDateTime(20) AND t < toDateTime(20)")
    assert expand_macros("$__timeInterval(recorded_at)", 0, 1, 0) == (
        "toStartOfInterval(toDateTime(recorded_at), INTERVAL 1 second)")
    assert interpolate("a = '${tenant}' AND ns IN (${ns:singlequote}) AND $__timeFilter(x)",
                       {"tenant": ["t-1"], "ns": ["a", "o'b"]}) == (
        "a = 't-1' AND ns IN ('a','o\\'b') AND $__timeFilter(x)")


# -- lint ----------------------------------------------------------------------------------------------------------

def test_the_dashboards_are_well_formed():
    found = boards()
    assert set(found) == {"costs", "worker"}
    assert len({b["uid"] for b in found.values()}) == len(found)
    for name, board in found.items():
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36, name  # Grafana 9+
        assert board["title"] and len(board["uid"]) <= 40 and board["time"]["from"].startswith("now-")
        variables = board["templating"]["list"]
        names = [v["name"] for v in variables]
        assert len(names) == len(set(names)), f"{name}: a variable defined twice"
        assert variables[0] == {**variables[0], "name": "datasource", "type": "datasource",
                                "query": "grafana-clickhouse-datasource"}, f"{name}: the datasource is a variable"
        for v in variables[1:]:
            assert v["type"] == "query" and v["datasource"] == DATASOURCE, f"{name}/{v['name']}"
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), f"{name}: panel ids"
        cells: set[tuple[int, int]] = set()
        for p in panels(board):
            where = f"{name}/{p['title']}"
            assert p["type"] in PANEL_TYPES and p["datasource"] == DATASOURCE, where
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, where
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not mine & cells, f"{where} overlaps another panel"
            cells |= mine
            for t in p["targets"]:
                assert t["datasource"] == DATASOURCE and t["editorType"] == "sql" and t["rawSql"].strip(), where
                timeseries = p["type"] == "timeseries"
                assert (t["format"], t["queryType"]) == ((0, "timeSeries") if timeseries else (1, "table")), where
                used = {m.group(1) or m.group(3) for m in VARIABLE.finditer(t["rawSql"])}
                assert {u for u in used if not u.startswith("__")} <= set(names), f"{where}: undefined variable"
                assert {m.group(1) for m in MACRO.finditer(t["rawSql"])} <= MACROS, f"{where}: unknown macro"
                # current data through the *_current views, which hold the current-run rule
                assert not CURRENT_RUN_RULE.search(t["rawSql"]), f"{where}: the current-run rule repeated"


# -- every query, on simulated data ----------------------------------------------------------------------------

TENANTS = ["grafana-a", "grafana-b"]
HOURS = 6
END = int(time.time()) // 3600 * 3600
START = END - HOURS * 3600


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Pipeline-written hours of two tenants, plus a failed and a refused run in the ledger (as the worker
    records them) for the worker's panels."""
    from kubecost_worker.store.ledger import RunRecord

    with pipeline_written(tmp_path_factory.mktemp("grafana"), TENANTS, START, HOURS, pods=12, seed=6) as sink:
        failed = RunRecord.start(TENANTS[0], START, "scheduled").failed("Thanos unavailable: 503")
        refused = RunRecord.start(TENANTS[1], START + 3600, "rerun").refused("found 10% of the stored samples",
                                                                             3, 0.5, 100, 10, [])
        sink.record(failed, refused)  # each the latest run of its tenant-hour, after a success
        yield sink


def on_simulated_data(test):
    return pytest.mark.slow(pytest.mark.needs_chdb(pytest.mark.needs_prometheus(test)))


def run(sink, sql: str, values: dict[str, list[str]]):
    """The query as Grafana sends it for the last HOURS hours up to now (the runs were recorded just now)."""
    expanded = expand_macros(interpolate(sql, values), START, int(time.time()) + 60, 3600)
    return sink.client.query(expanded)


def queries_by_title(board: dict) -> dict[str, str]:
    return {p["title"]: p["targets"][0]["rawSql"] for p in panels(board)}


def variable_values(sink, board: dict, tenant: str) -> dict[str, list[str]]:
    """Each template variable's options, in order (a variable may use the ones before it), all selected."""
    values: dict[str, list[str]] = {"datasource": ["ClickHouse"]}
    for v in board["templating"]["list"][1:]:
        options = [str(row[0]) for row in run(sink, v["query"], values).result_rows]
        assert options, f"variable {v['name']} has no options"
        values[v["name"]] = [tenant] if v["name"] == "tenant" and not v["multi"] else options
    return values


@on_simulated_data
@pytest.mark.parametrize("name", ["costs", "worker"])
def test_every_panel_returns_what_its_type_draws(store, name):
    board = boards()[name]
    values = variable_values(store, board, TENANTS[0])
    assert values["tenant"][:1] == [TENANTS[0]]
    for p in panels(board):
        for target in p["targets"]:
            result = run(store, target["rawSql"], values)
            where = f"{name}/{p['title']}"
            assert result.result_rows, f"{where}: no rows"
            columns = list(zip(result.column_names, zip(*result.result_rows)))
            numeric = [c for c, vs in columns if all(isinstance(v, (int, float)) or v is None for v in vs)
                       and any(v is not None for v in vs)]
            for column, vs in columns:
                assert not any(isinstance(v, float) and not math.isfinite(v) for v in vs), f"{where}: {column}"
            if p["type"] == "timeseries":
                assert result.column_names[0] == "time", f"{where}: the first column is the time"
                assert all(isinstance(v, dt.datetime) for v in columns[0][1]), where
                assert numeric, f"{where}: no value column"
                assert list(columns[0][1]) == sorted(columns[0][1]), f"{where}: time ascending"
            elif p["type"] == "stat":
                assert numeric, f"{where}: no number to show"
            elif p["type"] == "barchart":
                x_field = p["options"]["xField"]
                assert x_field in result.column_names and numeric, where
                assert all(isinstance(v, str) for v in dict(columns)[x_field]), where


@on_simulated_data
def test_the_cost_panels_show_the_stored_costs(store):
    board = boards()["costs"]
    values = variable_values(store, board, TENANTS[0])
    by_title = queries_by_title(board)
    (total, idle), = store.client.query(
        "SELECT sum(total_cost), sumIf(total_cost, namespace = '__idle__') FROM k8s_expenses_current "
        "WHERE cloud_account_id = {t:String}", parameters={"t": TENANTS[0]}).result_rows
    (shown,), = run(store, by_title["Total cost"], values).result_rows
    assert shown == pytest.approx(total, rel=1e-9) and total > 0
    (shown_idle,), = run(store, by_title["Idle cost"], values).result_rows
    assert shown_idle == pytest.approx(idle, rel=1e-9) and idle > 0
    over_time = run(store, by_title["Cost over time by namespace"], values).result_rows
    assert math.fsum(cost for _, _, cost in over_time) == pytest.approx(total, rel=1e-9)
    assert len({t for t, _, _ in over_time}) == HOURS
    by_node = run(store, by_title["Idle by node"], values).named_results()
    assert math.fsum(r["idle_cost"] for r in by_node) == pytest.approx(idle, rel=1e-9)
    (node,), = {(r[0],) for r in run(store, by_title["Unpriced nodes"], values).result_rows}
    assert node.startswith("byo-")  # the simulator's node without price series
    days = run(store, by_title["Cluster total per day, against the week before"], values).named_results()
    assert math.fsum(d["cost"] for d in days) == pytest.approx(total, rel=1e-9)
    assert all(d["week_before"] == 0 for d in days)  # nothing stored a week before
    billed = list(run(store, by_title["List against billed cost per day"], values).named_results())
    # nothing reconciled here: billed is list, row for row (test_api_assets.py draws it reconciled)
    assert all(d["billed"] == d["list"] for d in billed) and math.fsum(d["list"] for d in billed) == pytest.approx(
        total, rel=1e-9)


@on_simulated_data
def test_the_worker_panels_count_the_ledger(store):
    board = boards()["worker"]
    values = variable_values(store, board, TENANTS[0])
    assert values["tenant"] == sorted(TENANTS)
    by_title = queries_by_title(board)
    done = run(store, by_title["Tenant-hours done"], values).result_rows
    failing = run(store, by_title["Tenant-hours failing"], values).result_rows
    refused = run(store, by_title["Tenant-hours refused"], values).result_rows
    # every hour succeeded once; one of each tenant then had a later run fail or be refused
    assert (done, failing, refused) == ([(2 * HOURS,)], [(1,)], [(1,)])
    failures = run(store, by_title["Latest failures and refusals"], values).named_results()
    assert sorted(r["status"] for r in failures) == ["failed", "refused"]
    lag = run(store, by_title["Lag per tenant"], values).named_results()
    assert {r["tenant"] for r in lag} == set(TENANTS)
    assert all(0 <= r["lag_minutes"] <= (time.time() - END) / 60 + 1 for r in lag)
