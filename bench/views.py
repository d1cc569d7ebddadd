"""The *_current views beside a year of many tenants: one tenant's query on each view against the same on its table.

    .venv/bin/python bench/views.py [--tenants 150] [--days 365] [--rows-per-hour 20] [--runs 7]

Fills an embedded ClickHouse (the project's migrations) with ``--tenants`` x ``--days`` x 24 hours of synthetic
rows (one succeeded run per tenant-hour in the ledger, ``--rows-per-hour`` rows each in ``k8s_expenses``, a few
metric samples and the namespace rollup through the materialized views), then times, for one tenant and 3 hours
in the middle of the year, the same query on each ``*_current`` view and on its table (median of ``--runs``),
beside the old definition of ``k8s_expenses_current`` (``... IN (subquery)``, migration 0004/0006) run as a
plain query. Target: view / table <= 3.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubecost_worker.sink import migrations  # noqa: E402
from kubecost_worker.sink.clickhouse import ClickHouseSink  # noqa: E402

# One run id per tenant-hour, the same in the ledger and the rows: built from the two numbers.
RUN_ID = ("toUUID(concat(leftPad(hex(toUInt32({t})), 8, '0'), '-0000-4000-8000-', "
          "leftPad(hex(toUInt32({h})), 12, '0')))")
OLD_VIEW = ("SELECT *, total_cost FROM k8s_expenses WHERE (cloud_account_id, hour, run_id) IN "
            "(SELECT cloud_account_id, hour, argMax(run_id, recorded_at) FROM k8s_expense_runs "
            "WHERE status = 'succeeded' GROUP BY cloud_account_id, hour)")


def fill(sink: ClickHouseSink, tenants: int, hours: int, rows_per_hour: int, first_hour: int) -> None:
    n = tenants * hours
    t, h = "number % {tenants:UInt32}", "intDiv(number, {tenants:UInt32})"
    params = {"tenants": tenants, "rows": rows_per_hour, "first": first_hour}
    sink.client.command(
        "INSERT INTO k8s_expense_runs (cloud_account_id, hour, run_id, status, reason, started_at, finished_at, "
        "rows_written, total_cost, samples_seen, coverage, error, recorded_at) "
        f"SELECT concat('tenant-', toString({t})), toDateTime({{first:UInt32}} + {h} * 3600, 'UTC'), "
        f"{RUN_ID.format(t=t, h=h)}, 'succeeded', 'backfill', now64(3), now64(3), {{rows:UInt32}}, 1.0, 100, 100, "
        f"'', now64(6) FROM numbers({n})", parameters=params)
    per_row = "intDiv(number, {rows:UInt32})"
    t, h = f"{per_row} % {{tenants:UInt32}}", f"intDiv({per_row}, {{tenants:UInt32}})"
    sink.client.command(
        "INSERT INTO k8s_expenses (cloud_account_id, cluster_id, hour, namespace, workload_kind, workload_name, pod, "
        "node, running_minutes, cpu_core_hours, ram_byte_hours, cpu_cost, ram_cost, labels, run_id, inserted_at) "
        f"SELECT concat('tenant-', toString({t})), 'cluster', toDateTime({{first:UInt32}} + {h} * 3600, 'UTC'), "
        "concat('ns-', toString(number % 5)), 'deployment', concat('app-', toString(number % {rows:UInt32})), "
        "concat('app-', toString(number % {rows:UInt32}), '-x1y2z'), 'node-1', 60, 0.5, 2e9, 0.02, 0.01, "
        f"map('team', 'a'), {RUN_ID.format(t=t, h=h)}, now64(3) FROM numbers({n * rows_per_hour}) "
        "SETTINGS max_insert_threads = 2", parameters=params)
    t, h = f"intDiv(number, 2) % {{tenants:UInt32}}", f"intDiv(intDiv(number, 2), {{tenants:UInt32}})"
    sink.client.command(
        "INSERT INTO kubecost_metrics_hourly (cloud_account_id, hour, metric, labels, value, samples, point_json, "
        f"run_id) SELECT concat('tenant-', toString({t})), toDateTime({{first:UInt32}} + {h} * 3600, 'UTC'), "
        "if(number % 2 = 0, 'kubecost_savings_cpu_allocation', 'kubecost_cluster_management_cost'), map(), 0.1, 60, "
        f"'{{}}', {RUN_ID.format(t=t, h=h)} FROM numbers({n * 2})", parameters=params)
    for table in ("k8s_expense_runs", "k8s_expenses", "k8s_expenses_namespace_hourly", "kubecost_metrics_hourly"):
        sink.client.command(f"OPTIMIZE TABLE {table} FINAL")


def median_ms(sink: ClickHouseSink, sql: str, params: dict, runs: int) -> tuple[float, list]:
    result = sink.query(sql, params)  # warm: the first run reads the marks
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        again = sink.query(sql, params)
        times.append((time.perf_counter() - began) * 1000)
        assert again == result
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=150)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rows-per-hour", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-views-"))
    sink = ClickHouseSink.open(f"chdb://{workdir / 'ch'}")
    migrations.migrate(sink.client)
    hours = args.days * 24
    first = (int(time.time()) // 3600 - hours) * 3600
    began = time.perf_counter()
    fill(sink, args.tenants, hours, args.rows_per_hour, first)
    rows = sink.query("SELECT count() FROM k8s_expenses")[0][0]
    print(f"{args.tenants} tenants x {args.days} days x {args.rows_per_hour} rows/hour: {rows:,} rows, "
          f"filled in {time.perf_counter() - began:.0f} s\n")
    window = "cloud_account_id = {t:String} AND hour >= toDateTime({a:UInt32}, 'UTC') AND hour < toDateTime({b:UInt32}, 'UTC')"
    middle = first + hours // 2 * 3600
    params = {"t": "tenant-7", "a": middle, "b": middle + 3 * 3600}
    cases = [
        ("k8s_expenses_current", "k8s_expenses", "sum(total_cost), count()"),
        ("k8s_expenses_namespace_current", "k8s_expenses_namespace_hourly", "sum(total_cost), sum(rows)"),
        ("kubecost_metrics_current", "kubecost_metrics_hourly", "sum(value), count()"),
    ]
    print(f"{'query, one tenant, 3 hours':<44} {'view ms':>9} {'table ms':>9} {'view / table':>13}  target <= 3")
    for view, table, what in cases:
        view_ms, on_view = median_ms(sink, f"SELECT {what} FROM {view} WHERE {window}", params, args.runs)
        table_ms, on_table = median_ms(sink, f"SELECT {what} FROM {table} WHERE {window}", params, args.runs)
        assert on_view == on_table, (view, on_view, on_table)  # one run per hour: the same rows
        ratio = view_ms / table_ms
        print(f"{view:<44} {view_ms:>9.1f} {table_ms:>9.1f} {ratio:>12.1f}x  {'yes' if ratio <= 3 else 'NO'}")
    old_ms, on_old = median_ms(sink, f"SELECT sum(total_cost), count() FROM ({OLD_VIEW}) WHERE {window}", params,
                               max(3, args.runs // 2))
    print(f"{'the old k8s_expenses_current (IN subquery)':<44} {old_ms:>9.1f}")
    sink.close()


if __name__ == "__main__":
    main()
