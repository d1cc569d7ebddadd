"""Every query of docs/sql.md runs on data the real pipeline wrote, and the sums it shows add up."""

from __future__ import annotations

import re
import time

import pytest


from .conftest import ROOT, pipeline_written

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
TENANTS = ["cookbook-a", "cookbook-b"]
HOURS = 3
END = int(time.time()) // 3600 * 3600
START = END - HOURS * 3600
QUERIES = re.findall(r"### (\d+)\. ([^\n]+)\n(?:.*?\n)??```sql\n(.*?)```", (ROOT / "docs" / "sql.md").read_text(),
                     re.S)


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    with pipeline_written(tmp_path_factory.mktemp("cookbook"), TENANTS, START, HOURS, pods=12, seed=9) as sink:
        yield sink


def run(sink, sql: str):
    result = sink.client.query(sql.replace("'acme-prod'", f"'{TENANTS[0]}'"))
    return list(result.column_names), result.result_rows


def test_the_cookbook_has_its_queries():
    assert [int(n) for n, _, _ in QUERIES] == list(range(1, 12))


@pytest.mark.parametrize("number, title, sql", QUERIES, ids=[f"q{n}" for n, _, _ in QUERIES])
def test_each_query_runs_and_returns_rows(sink, number, title, sql):
    names, rows = run(sink, sql)
    assert rows, title


def total(sink) -> float:
    return sink.query("SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String}",
                      {"t": TENANTS[0]})[0][0]


def query(number: int) -> str:
    return next(sql for n, _, sql in QUERIES if int(n) == number)


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
