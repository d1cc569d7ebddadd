"""The store at scale: the *_current views, reruns and cleanup beside a year of many tenants.

    .venv/bin/python bench/views.py [--tenants 150] [--days 365] [--rows-per-hour 20] [--runs 7] [--pods 200]

Fills an embedded ClickHouse (the project's migrations) with ``--tenants`` x ``--days`` x 24 hours of synthetic
rows (one succeeded run per tenant-hour in the ledger, ``--rows-per-hour`` rows each in ``k8s_expenses``, a few
metric samples and the namespace rollup through the materialized views), then times, for one tenant and 3 hours
in the middle of the year, the same query on each ``*_current`` view and on its table (median of ``--runs``),
beside the old definition of ``k8s_expenses_current`` (``... IN (subquery)``, migration 0004/0006) run as a
plain query. Target: view / table <= 3.

Then the write path beside the same store (needs Debian's prometheus and promtool): a simulated ``--pods`` tenant
in a local Prometheus, its 6 newest hours run by the real pipeline (``run_hour``: fetch, model, refusal check,
insert, commit) into the big store, then run again (reruns: nothing is deleted on the way). Target: rerun / first
run about 1 (the rerun costs what the first run costs). The storage overhead before cleanup (rows stored / rows
visible, store-wide and in the rerun hours), then cleanup (``collect_garbage``) as the scheduler's tick runs it
(hours changed since the previous tick) and as a full sweep (``kubecost-worker gc``), after the 6 reruns and
after a rerun of 2 hours of every tenant: seconds per superseded run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubecost_worker import logs, wiring  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks  # noqa: E402
from kubecost_worker.devtools.simulation import write_simulation  # noqa: E402
from kubecost_worker.jobs.scheduler import CLEANUP_OVERLAP  # noqa: E402
from kubecost_worker.hours import HOUR, last_closed_hour, now
from kubecost_worker.store.ledger import RunStatus  # noqa: E402
from kubecost_worker.store import migrations  # noqa: E402
from kubecost_worker.store.clickhouse import ClickHouseSink  # noqa: E402

GOLDEN = "golden-tenant"
RERUN_HOURS = 6

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
    # each run recorded 5 minutes after its hour closed, as the scheduler runs them
    closed = "toDateTime64({first:UInt32} + " + h + " * 3600 + 3900, PRECISION, 'UTC')"
    sink.client.command(
        "INSERT INTO k8s_expense_runs (cloud_account_id, hour, run_id, status, reason, started_at, finished_at, "
        "rows_written, total_cost, samples_seen, coverage, error, recorded_at) "
        f"SELECT concat('tenant-', toString({t})), toDateTime({{first:UInt32}} + {h} * 3600, 'UTC'), "
        f"{RUN_ID.format(t=t, h=h)}, 'succeeded', 'backfill', {closed.replace('PRECISION', '3')}, {closed.replace('PRECISION', '3')}, {{rows:UInt32}}, "
        f"1.0, 100, 100, '', {closed.replace('PRECISION', '6')} FROM numbers({n})", parameters=params)
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
    t, h = "intDiv(number, 2) % {tenants:UInt32}", "intDiv(intDiv(number, 2), {tenants:UInt32})"
    sink.client.command(
        "INSERT INTO kubecost_metrics_hourly (cloud_account_id, hour, metric, labels, value, samples, point_json, "
        f"run_id) SELECT concat('tenant-', toString({t})), toDateTime({{first:UInt32}} + {h} * 3600, 'UTC'), "
        "if(number % 2 = 0, 'kubecost_savings_cpu_allocation', 'kubecost_cluster_management_cost'), map(), 0.1, 60, "
        f"'{{}}', {RUN_ID.format(t=t, h=h)} FROM numbers({n * 2})", parameters=params)
    for table in ("k8s_expense_runs", "k8s_expenses", "k8s_expenses_namespace_hourly", "kubecost_metrics_hourly"):
        sink.client.command(f"OPTIMIZE TABLE {table} FINAL")


def rerun_every_tenant(sink: ClickHouseSink, tenants: int, hours: list[int], rows_per_hour: int) -> int:
    """A second succeeded run (new run ids, the same rows) of ``hours`` of every synthetic tenant, as a late-data
    recheck or a rerun range across tenants writes; returns the runs superseded."""
    n = tenants * len(hours)
    rerun_id = RUN_ID.replace("'-0000-4000-8000-'", "'-0001-4000-8000-'")
    t, h = "number % {tenants:UInt32}", "intDiv(number, {tenants:UInt32})"
    params = {"tenants": tenants, "rows": rows_per_hour, "first": hours[0]}
    sink.client.command(
        "INSERT INTO k8s_expenses (cloud_account_id, cluster_id, hour, namespace, workload_kind, workload_name, pod, "
        "node, running_minutes, cpu_core_hours, ram_byte_hours, cpu_cost, ram_cost, labels, run_id, inserted_at) "
        f"SELECT concat('tenant-', toString({t})), 'cluster', toDateTime({{first:UInt32}} + {h} * 3600, 'UTC'), "
        "'ns-0', 'deployment', concat('app-', toString(k)), concat('app-', toString(k), '-x1y2z'), 'node-1', 60, 0.5, "
        f"2e9, 0.02, 0.01, map('team', 'a'), {rerun_id.format(t=t, h=h)}, now64(3) "
        "FROM numbers({n:UInt32}) ARRAY JOIN range({rows:UInt32}) AS k", parameters={**params, "n": n})
    sink.client.command(
        "INSERT INTO k8s_expense_runs (cloud_account_id, hour, run_id, status, reason, started_at, finished_at, "
        "rows_written, total_cost, samples_seen, coverage, error, recorded_at) "
        f"SELECT concat('tenant-', toString({t})), toDateTime({{first:UInt32}} + {h} * 3600, 'UTC'), "
        f"{rerun_id.format(t=t, h=h)}, 'succeeded', 'late-data', now64(3), now64(3), {{rows:UInt32}}, 1.0, 100, 100, "
        "'', now64(6) FROM numbers({n:UInt32})", parameters={**params, "n": n})
    return n


def write_path(sink: ClickHouseSink, workdir: Path, pods: int, tenants: int, last_hour: int,
               rows_per_hour: int) -> None:
    """Reruns against first runs, the overhead before cleanup and cleanup's cost, beside the big store."""
    first_hour = last_hour - (RERUN_HOURS - 1) * HOUR
    sim = write_simulation(workdir / "sim", [GOLDEN], first_hour, RERUN_HOURS, nodes=max(3, pods // 50), pods=pods)
    create_blocks(Path(sim["openmetrics"]), workdir / "tsdb")
    hours = list(range(first_hour, last_hour + HOUR, HOUR))
    with LocalPrometheus(workdir / "tsdb") as url:
        config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": sink.url})
        pipeline = wiring.build_pipeline(config, sink)
        pipeline.run_hour(GOLDEN, hours[0] - HOUR)  # warm: connections, caches (an hour without data)

        def timed(reason: str) -> list[float]:
            seconds = []
            for hour in hours:
                began = time.perf_counter()
                record = pipeline.run_hour(GOLDEN, hour, reason)
                seconds.append(time.perf_counter() - began)
                assert record.status == RunStatus.SUCCEEDED, record
            return seconds

        first = timed("backfill")
        rerun = timed("rerun")
    ratio = statistics.median(rerun) / statistics.median(first)
    print(f"\n{'run_hour of a ' + format(pods, ',') + '-pod tenant-hour, median of 6':<44} {'first s':>9} "
          f"{'rerun s':>9} {'rerun / first':>13}  target about 1")
    print(f"{'beside the store above':<44} {statistics.median(first):>9.3f} {statistics.median(rerun):>9.3f} "
          f"{ratio:>12.2f}x  {'yes' if ratio <= 1.5 else 'NO'}")

    def overhead(where: str = "1") -> tuple[int, int]:
        stored = sink.query(f"SELECT count() FROM k8s_expenses WHERE {where}")[0][0]
        visible = sink.query(f"SELECT count() FROM k8s_expenses_current WHERE {where}")[0][0]
        return stored, visible

    stored, visible = overhead()
    golden_stored, golden_visible = overhead(f"cloud_account_id = '{GOLDEN}'")
    print(f"\nbefore cleanup: {stored:,} rows stored for {visible:,} visible (+{(stored - visible) / visible:.4%}); "
          f"in the rerun hours {golden_stored:,} for {golden_visible:,} ({golden_stored / golden_visible:.1f}x: one "
          "superseded copy of each rerun hour until the next cleanup)")
    print(f"\n{'cleanup (collect_garbage)':<58} {'runs':>7} {'seconds':>8} {'s / run':>8}")

    def cleanup(label: str, since) -> None:
        done = sink.collect_garbage(since)
        print(f"{label:<58} {done.runs:>7,} {done.seconds:>8.2f} {done.seconds / max(done.runs, 1):>8.4f}")

    # the scheduler's tick: hours whose ledger changed since its previous cleanup (an hour ago), less the overlap
    tick = now() - dt.timedelta(hours=1) - CLEANUP_OVERLAP
    cleanup(f"the tick after the {RERUN_HOURS} reruns", tick)
    rerun_hours = [last_hour - 48 * HOUR, last_hour - 47 * HOUR]
    superseded = rerun_every_tenant(sink, tenants, rerun_hours, rows_per_hour)
    stored, visible = overhead()
    print(f"{'(' + format(superseded, ',') + ' tenant-hours rerun: ' + format(stored - visible, ',') + ' superseded rows)':<58}")
    cleanup("the tick after a rerun of 2 hours of every tenant", tick)
    rerun_every_tenant(sink, tenants, [last_hour - 72 * HOUR, last_hour - 71 * HOUR], rows_per_hour)
    cleanup("a full sweep (kubecost-worker gc) after the same once more", None)
    cleanup("a full sweep with nothing to remove", None)
    assert overhead() == (visible, visible)


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
    parser.add_argument("--pods", type=int, default=200, help="pods of the tenant whose hours are rerun")
    parser.add_argument("--skip-writes", action="store_true", help="the views only")
    args = parser.parse_args()
    logs.configure("text", "warning")
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-views-"))
    sink = ClickHouseSink.open(f"chdb://{workdir / 'ch'}")
    migrations.migrate(sink.client)
    hours = args.days * 24
    first = last_closed_hour() - (hours - 1) * 3600
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
    if not args.skip_writes:
        write_path(sink, workdir, args.pods, args.tenants, first + (hours - 1) * 3600, args.rows_per_hour)
    sink.close()


if __name__ == "__main__":
    main()
