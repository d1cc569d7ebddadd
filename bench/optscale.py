"""OptScale's expenses: what ``export-optscale`` and ``k8s_expenses_daily`` cost over 30 days of a 2,000-pod tenant.

    .venv/bin/python bench/optscale.py [--pods 2000] [--days 30] [--store PATH]

The store is ``bench/allocation.py``'s (one real tenant-hour copied to every hour of the window and to 4
neighbour tenants; ``--store`` reuses one). Every resource of the tenant is mapped to an OptScale id, OptScale's
table is created in the same chDB (database ``optscale``), then: the first export of the whole window, the same
export again (nothing to write), the hourly export (yesterday and today), a rerun of one hour with its CPU costs
changed followed by the hourly export, and one day of the view read alone. Seconds, rows written, and the
clean-expenses query's total against the view's.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from allocation import TENANT, open_store  # noqa: E402
from api import percentile  # noqa: E402
from kubecost_worker import logs, wiring
from kubecost_worker.read import optscale  # noqa: E402

TABLE = "optscale.expenses"


def timed(what, *args):
    started = time.perf_counter()
    result = what(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--store", type=Path, help="a chDB path bench/allocation.py or this bench filled")
    args = parser.parse_args()
    logs.configure("text", "warning")
    config, last, rows = open_store(args.store, args.pods, args.days)
    sink = wiring.open_sink(config)
    client = sink.client
    start, end = last + 3600 - args.days * 86400, last + 3600
    optscale.create_table(client, TABLE)
    client.command(f"TRUNCATE TABLE {TABLE}")
    client.command("TRUNCATE TABLE optscale_resource_ids")
    _, mapping = timed(client.command, "INSERT INTO optscale_resource_ids (cloud_account_id, cloud_resource_id, "
                                       "resource_id) SELECT DISTINCT cloud_account_id, cloud_resource_id, "
                                       "concat('os:', cloud_resource_id) FROM k8s_expenses_daily "
                                       f"WHERE cloud_account_id = '{TENANT}'")
    figures = []

    def export(label: str, window: tuple[int, int]) -> None:
        done, seconds = timed(optscale.export_tenant, client, client, TABLE, TENANT, *window)
        figures.append((label, seconds, done.resources, done.added, done.cancelled))

    export(f"first export, {args.days} days", (start, end))
    export(f"the same again, {args.days} days", (start, end))
    export("hourly: yesterday and today", optscale.default_window(last + 1800))
    # a rerun of the last hour with every CPU cost 10% higher, as a run of its own (ledger, rows, commit)
    run_id = str(uuid.uuid4())
    client.command("INSERT INTO k8s_expenses SELECT * REPLACE (cpu_cost * 1.1 AS cpu_cost, toUUID({r:String}) AS "
                   "run_id) FROM k8s_expenses WHERE cloud_account_id = {t:String} AND hour = toDateTime({h:Int64}, "
                   "'UTC') AND run_id IN (SELECT run_id FROM k8s_expense_current_runs WHERE cloud_account_id = "
                   "{t:String} AND hour = toDateTime({h:Int64}, 'UTC'))",
                   parameters={"t": TENANT, "h": last, "r": run_id})
    client.command("INSERT INTO k8s_expense_runs (cloud_account_id, hour, run_id, status, reason, started_at, "
                   "finished_at, recorded_at) VALUES ({t:String}, toDateTime({h:Int64}, 'UTC'), {r:UUID}, "
                   "'succeeded', 'rerun', now64(3), now64(3), now64(6))",
                   parameters={"t": TENANT, "h": last, "r": run_id})
    export("hourly, after a rerun of the last hour", optscale.default_window(last + 1800))

    day = last - last % 86400
    day_reads = []
    for _ in range(10):
        _, seconds = timed(lambda: client.query(
            "SELECT cloud_resource_id, cost FROM k8s_expenses_daily WHERE cloud_account_id = {t:String} "
            "AND day = toDate(toDateTime({d:Int64}, 'UTC'))", parameters={"t": TENANT, "d": day}))
        day_reads.append(seconds)
    (read,), = client.query(f"SELECT sum(c) FROM (SELECT SUM(cost * sign) AS c FROM {TABLE} WHERE cloud_account_id "
                            "= {t:String} GROUP BY cloud_account_id, resource_id, date HAVING SUM(sign) > 0)",
                            parameters={"t": TENANT}).result_rows
    (view,), = client.query("SELECT sum(cost) FROM k8s_expenses_daily WHERE cloud_account_id = {t:String}",
                            parameters={"t": TENANT}).result_rows

    print(f"\n{args.pods} pods, {args.days} days stored ({rows:,} rows of the tenant, 4 neighbours alike); "
          f"mapping every resource: {mapping:.2f} s\n")
    print(f"{'step':<44} {'seconds':>8} {'resource-days':>14} {'+1 rows':>9} {'-1 rows':>9}")
    for label, seconds, resources, added, cancelled in figures:
        print(f"{label:<44} {seconds:>8.2f} {resources:>14,} {added:>9,} {cancelled:>9,}")
    print(f"\none day of k8s_expenses_daily: p50 {percentile(day_reads, 0.5) * 1000:.0f} ms")
    print(f"OptScale's clean expenses {read:.6f} against the view's {view:.6f} "
          f"(relative difference {abs(read - view) / view:.1e})")
    print(f"the store: {config.clickhouse_url.removeprefix('chdb://')} (--store to measure it again)")


if __name__ == "__main__":
    main()
