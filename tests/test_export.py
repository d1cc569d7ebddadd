"""``kubecost-worker export``: a tenant's current data written by ClickHouse in CSV, Parquet and JSON lines, read
back here (Parquet with pyarrow) and compared with SQL over ``k8s_expenses_current``."""

from __future__ import annotations

import csv
import json
import math
import time

import pyarrow.parquet as pq
import pytest

from .conftest import Cluster, ch_client, iso, run_worker

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
TENANTS = ["export-a", "export-b"]
HOURS = 3
END = int(time.time()) // 3600 * 3600
START = END - HOURS * 3600
SPECIAL = "('__idle__', '__cluster_management__', '__unmounted__')"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The store written by ``backfill``, then exported by the CLI in every format (each a process of its own,
    as chDB opens a path in one process at a time); the files, and the store's URL to compare with."""
    root = tmp_path_factory.mktemp("export")
    cluster = Cluster(root, TENANTS, START, HOURS, pods=12, seed=9)
    env = {**cluster.worker_env(f"chdb://{root / 'ch'}")}
    try:
        assert run_worker("migrate", env=env).returncode == 0
        backfill = run_worker("backfill", "--start", iso(START), "--end", iso(END), env=env)
        assert backfill.returncode == 0, backfill.stderr
    finally:
        cluster.prometheus.stop()
    files = {}
    for name, fmt, extra in (("rows.parquet", "parquet", ()), ("rows.csv", "csv", ()), ("rows.jsonl", "jsonl", ()),
                             ("teams.parquet", "parquet", ("--aggregate", "namespace,label:team", "--step", "day")),
                             ("pods.csv", "csv", ("--aggregate", "node,pod", "--step", "hour"))):
        out = root / name
        result = run_worker("export", "--tenant", TENANTS[0], "--start", iso(START), "--end", iso(END),
                            "--format", fmt, "--out", str(out), *extra, env=env)
        assert result.returncode == 0, result.stderr
        assert f"bytes to {out}" in result.stdout and not out.with_name(out.name + ".partial").exists()
        files[name] = out
    return files, f"chdb://{root / 'ch'}", env


def sql(url: str, query: str) -> list[tuple]:
    with ch_client(url) as client:
        return client.query(query, parameters={"t": TENANTS[0]}).result_rows


def test_the_row_exports_hold_the_current_rows(exported):
    files, url, _ = exported
    (rows, total, cpu_usage), = sql(url, "SELECT count(), sum(total_cost), sum(cpu_usage_core_hours) "
                                         "FROM k8s_expenses_current WHERE cloud_account_id = {t:String}")
    table = pq.read_table(files["rows.parquet"])
    assert table.num_rows == rows > 0
    assert math.fsum(table.column("total_cost").to_pylist()) == pytest.approx(total, rel=1e-12)
    usage = [u for u in table.column("cpu_usage_core_hours").to_pylist() if u is not None]  # NULL stays NULL
    assert math.fsum(usage) == pytest.approx(cpu_usage, rel=1e-12) and len(usage) < rows
    assert {"labels", "container", "pod_uid", "service", "price_source"} <= set(table.column_names)
    assert not {"run_id", "inserted_at"} & set(table.column_names)
    assert set(table.column("cloud_account_id").to_pylist()) == {TENANTS[0]}  # the other tenant's rows stay out
    with open(files["rows.csv"], newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == rows and math.fsum(float(r["total_cost"]) for r in lines) == pytest.approx(total, rel=1e-12)
    records = [json.loads(line) for line in files["rows.jsonl"].read_text().splitlines()]
    assert len(records) == rows and records[0].keys() == set(table.column_names)


def test_an_aggregated_export_groups_as_the_api_does(exported):
    files, url, _ = exported
    expected = {(day, ns, team): total for day, ns, team, total in sql(
        url, f"SELECT toStartOfDay(hour), namespace, multiIf(namespace IN {SPECIAL}, namespace, "
             "mapContains(labels, 'team'), labels['team'], '__unallocated__'), sum(total_cost) "
             "FROM k8s_expenses_current WHERE cloud_account_id = {t:String} GROUP BY ALL")}
    table = pq.read_table(files["teams.parquet"]).to_pylist()
    assert table and list(table[0])[:3] == ["start", "namespace", "label:team"]
    got = {(r["start"].replace(tzinfo=None), r["namespace"], r["label:team"]): r["total_cost"] for r in table}
    assert got.keys() == {(d.replace(tzinfo=None), n, t) for d, n, t in expected}
    for (day, ns, team), total in expected.items():
        assert got[(day.replace(tzinfo=None), ns, team)] == pytest.approx(total, rel=1e-9)
    with open(files["pods.csv"], newline="") as f:
        pods = list(csv.DictReader(f))
    (total,), = sql(url, "SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String}")
    assert list(pods[0])[:3] == ["start", "node", "pod"]
    assert math.fsum(float(r["total_cost"]) for r in pods) == pytest.approx(total, rel=1e-9)
    assert len({r["start"] for r in pods}) == HOURS


def test_a_bad_aggregate_is_refused_and_writes_nothing(exported, tmp_path):
    _, _, env = exported
    out = tmp_path / "never.csv"
    result = run_worker("export", "--tenant", TENANTS[0], "--start", iso(START), "--end", iso(END), "--format", "csv",
                        "--out", str(out), "--aggregate", "namespace,owner", env=env)
    assert result.returncode == 2 and "--aggregate" in result.stderr and not out.exists()
