"""Read-layer latency: each endpoint over a 30-day window of a 2,000-pod tenant, next to the same answer computed
by Prometheus at request time.

    .venv/bin/python bench/api.py [--pods 2000] [--days 30] [--requests 30] [--prom-hours 4]

Stored side: one real tenant-hour of a simulated 2,000-pod cluster goes through the worker (Prometheus -> model
-> chDB); its rows, metric samples and ledger record are then copied to every hour of the 30 days (and to 4
neighbour tenants, so the tenant filter has work to do) with INSERT ... SELECT. The API is served by uvicorn on
loopback and called over HTTP; p50/p95 of `--requests` calls per endpoint.

Request-time side: the PromQL a Metroculus-on-Thanos design runs for the same answer, against a Prometheus that
holds `--prom-hours` hours of the same raw series (30 days of 2,000 pods do not fit on this machine as
OpenMetrics: about 190 GB). Its time is measured over a 1-hour window and over all the hours held, and a line
through the two (a fixed cost per request plus a cost per hour of window: PromQL's work is linear in the samples
its range selectors touch) gives the 30-day figure; both figures are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubecost_worker import logs  # noqa: E402
from kubecost_worker.api.app import create_app  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.localprom import LocalPrometheus, backfill as promtool_backfill, free_port  # noqa: E402
from kubecost_worker.pipeline import Pipeline, backfill  # noqa: E402
from kubecost_worker.simulate import write_simulation  # noqa: E402
from kubecost_worker.sink import migrations  # noqa: E402
from kubecost_worker.sink.clickhouse import ClickHouseSink  # noqa: E402
from kubecost_worker.source.thanos import ThanosClient, ThanosSettings  # noqa: E402

SECRET = "bench"
TENANT = "bench-big-tenant"
NEIGHBOURS = 4
ENDPOINTS = {
    "kubecost_cluster_costs": {},
    "kubecost_metrics": {},
    "kubecost_savings": {},
    "k8s_expenses (namespace, day)": {"aggregate": "namespace", "step": "day"},
}
# What a request-time design would ask Thanos for each endpoint, over the window, step 1h.
PROMQL = {
    "kubecost_cluster_costs": [
        'sum(avg_over_time(node_total_hourly_cost{{{sel}}}[1h]))',
        'sum(avg_over_time(kubecost_load_balancer_cost{{{sel}}}[1h]))',
        'sum(avg_over_time(kubecost_cluster_management_cost{{{sel}}}[1h]))',
        'sum(avg_over_time(pv_hourly_cost{{{sel}}}[1h]) * on (persistentvolume) group_left '
        'avg_over_time(kube_persistentvolume_capacity_bytes{{{sel}}}[1h])) / 2^30',
    ],
    # one avg_over_time per kubecost_* metric name (avg_over_time drops the name, so they cannot share a query)
    "kubecost_metrics": ['avg_over_time({name}{{{sel}}}[1h])'],
    "kubecost_savings": ['avg_over_time(kubecost_savings_cpu_allocation{{{sel}}}[1h])',
                         'avg_over_time(kubecost_savings_memory_allocation_bytes{{{sel}}}[1h])'],
    "k8s_expenses (namespace, day)": [
        'sum by (namespace) (avg_over_time(container_cpu_allocation{{{sel}}}[1h]) * on (node) group_left '
        'avg_over_time(node_cpu_hourly_cost{{{sel}}}[1h]))',
        'sum by (namespace) (avg_over_time(container_memory_allocation_bytes{{{sel}}}[1h]) * on (node) group_left '
        'avg_over_time(node_ram_hourly_cost{{{sel}}}[1h])) / 2^30',
    ],
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def fill(sink: ClickHouseSink, days: int) -> int:
    """Copy the processed hour (rows, metric samples, ledger) to every earlier hour of the window and to the
    neighbour tenants; returns the tenant's row count."""
    tenants = [TENANT] + [f"neighbour-{i}" for i in range(1, NEIGHBOURS + 1)]
    for table in ("k8s_expenses", "kubecost_metrics_hourly", "k8s_expense_runs"):
        names = [r[0] for r in sink.query(f"SELECT name FROM system.columns WHERE table = '{table}' "
                                          "AND database = currentDatabase() ORDER BY position")]
        select = ", ".join("copy_tenant" if c == "cloud_account_id" else
                           "hour - toIntervalHour(n.number)" if c == "hour" else c for c in names)
        sink.client.command(
            f"INSERT INTO {table} ({', '.join(names)}) SELECT {select} "
            f"FROM {table} ARRAY JOIN {{tenants:Array(String)}} AS copy_tenant CROSS JOIN numbers({days * 24}) AS n "
            "WHERE cloud_account_id = {t:String} AND (n.number > 0 OR copy_tenant != {t:String})",
            parameters={"t": TENANT, "tenants": tenants})
    for table in ("k8s_expenses", "kubecost_metrics_hourly", "k8s_expense_runs"):
        sink.client.command(f"OPTIMIZE TABLE {table} FINAL")
    return sink.query("SELECT count() FROM k8s_expenses_current WHERE cloud_account_id = {t:String}", {"t": TENANT})[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--prom-hours", type=int, default=4)
    args = parser.parse_args()
    logs.configure("text", "warning")
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-api-"))
    last = int(time.time()) // 3600 * 3600 - 3600
    prom_start = last - (args.prom_hours - 1) * 3600
    print(f"simulating {args.pods} pods for {args.prom_hours} h and backfilling Prometheus...", file=sys.stderr)
    sim = write_simulation(workdir / "sim", [TENANT], prom_start, args.prom_hours, nodes=max(3, args.pods // 50),
                           pods=args.pods)
    promtool_backfill(Path(sim["openmetrics"]), workdir / "tsdb")
    with LocalPrometheus(workdir / "tsdb") as url:
        config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{workdir / 'ch'}"})
        sink = ClickHouseSink.open(config.clickhouse_url)
        migrations.migrate(sink.client)
        thanos = ThanosClient(ThanosSettings.from_config(config))
        backfill(Pipeline(config, thanos, sink), [TENANT], [last])
        print("copying the hour over the window...", file=sys.stderr)
        started = time.perf_counter()
        rows = fill(sink, args.days)
        print(f"{rows:,} rows for the tenant in {time.perf_counter() - started:.0f} s", file=sys.stderr)

        # request-time answers from Prometheus over the hours it holds
        prom_seconds = {}
        selector = f'tenant_id="{TENANT}"'
        names = sorted({s.get("__name__", "") for s in thanos.query(f'count by (__name__) ({{__name__=~"kubecost_.+", '
                                                                      f'{selector}}})', last + 1800)
                        for s in [s["metric"]]})
        def request_time(endpoint: str, first_hour: int) -> float:
            timings = []
            for _ in range(3):
                t0 = time.perf_counter()
                for promql in PROMQL[endpoint]:
                    for name in (names if "{name}" in promql else [""]):
                        thanos.query_range(promql.format(sel=selector, name=name), first_hour + 3600 - 0.001,
                                           last + 3600 - 0.001, 3600)
                timings.append(time.perf_counter() - t0)
            return statistics.median(timings)

        for endpoint in PROMQL:
            # a fixed cost per request plus a cost per hour of window: fitted on 1 hour and on all held hours
            one, held = request_time(endpoint, last), request_time(endpoint, prom_start)
            per_hour = max(held - one, 0.0) / max(args.prom_hours - 1, 1)
            prom_seconds[endpoint] = (held, one - per_hour + per_hour * args.days * 24)

        app = create_app(sink.query, SECRET, max_days=366)
        import uvicorn

        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        window = {"cloud_account_id": TENANT, "start_date": last + 3600 - args.days * 86400, "end_date": last + 3600}
        session = requests.Session()
        session.headers.update({"Secret": SECRET, "Content-type": "application/json"})
        print(f"\n{args.pods} pods, {args.days} days stored ({rows:,} rows of the tenant, {NEIGHBOURS} neighbours "
              f"alike); {args.requests} requests per endpoint over the whole window\n")
        print(f"{'endpoint':<32} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>10}   {'Prometheus ' + str(args.prom_hours) + ' h':>16} "
              f"{'-> ' + str(args.days) + ' d (scaled)':>18} {'speed-up (p50)':>15}")
        for endpoint, extra in ENDPOINTS.items():
            path = endpoint.split(" ")[0]
            latencies, size = [], 0
            for _ in range(args.requests):
                t0 = time.perf_counter()
                response = session.get(f"http://127.0.0.1:{port}/metroculus/v2/{path}", params={**window, **extra})
                latencies.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text[:300]
                size = len(response.content)
            p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
            held, scaled = prom_seconds[endpoint]
            print(f"{endpoint:<32} {p50 * 1000:>8.1f} {p95 * 1000:>8.1f} {size:>10,}   "
                  f"{held * 1000:>13.0f} ms {scaled * 1000:>15.0f} ms {scaled / p50:>14.1f}x")
        server.should_exit = True
        sink.close()


if __name__ == "__main__":
    main()
