"""Read-layer latency: each endpoint over a 30-day window of a 2,000-pod tenant, next to the same answer computed
by Prometheus at request time.

    .venv/bin/python bench/api.py [--pods 2000] [--days 30] [--requests 30] [--prom-hours 4]

Stored side: one real tenant-hour of a simulated 2,000-pod cluster goes through the worker (Prometheus -> model
-> chDB); its rows, metric samples and ledger record are then copied to every hour of the 30 days (and to 4
neighbour tenants, so the tenant filter has work to do) with INSERT ... SELECT.

Request-time side: the PromQL a Metroculus-on-Thanos design runs for the same answer (`PROMQL`).
- kubecost_metrics and kubecost_savings read only the tenant's kubecost_* series (a few dozen): those are held
  for the whole window in a Prometheus of their own (the simulated hours repeated back over the days), and the
  30-day query is timed as it is.
- The cluster cost and the namespace breakdown need every pod's series, and 30 days of 2,000 pods do not fit
  on this machine as OpenMetrics (about 190 GB). Prometheus holds `--prom-hours` hours of them; their time is
  measured over a 1-hour window and over all the hours held, and a line through the two (a fixed cost per
  request plus a cost per hour of window: PromQL's work is linear in the samples its range selectors touch)
  gives the 30-day figure.

The API runs as `kubecost-worker serve` in a process of its own, as deployed, and is called over loopback HTTP;
p50/p95 of `--requests` calls per endpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumers import WORKER, worker_env  # noqa: E402
from kubecost_worker import logs, wiring  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks, free_port  # noqa: E402
from kubecost_worker.devtools.simulation import write_simulation  # noqa: E402
from kubecost_worker.hours import last_closed_hour  # noqa: E402
from kubecost_worker.pipeline import run_hours  # noqa: E402
from kubecost_worker.store.clickhouse import ClickHouseSink  # noqa: E402
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
#
# The cluster cost must be the same answer as the stored one: every row of the hour, so per node and resource the
# larger of what its containers were allocated (max of allocation and request, per container) and its capacity
# (allocated plus idle, idle clamped at 0), plus volumes, load balancers, management and network egress. That
# needs the pod-level series; node_total_hourly_cost alone is a different number wherever a node is
# over-committed or pods send traffic (the benchmark prints both next to the stored total).
NODE_RESOURCE = (
    "max by (node) (label_replace(sum by (node) (max by (namespace, pod, container, node) ("
    "sum_over_time(%(alloc)s{{{sel}}}[1h]) or "
    'sum_over_time(kube_pod_container_resource_requests{{{sel}, resource="%(resource)s"}}[1h]))) / 60, '
    '"side", "allocated", "", "") or label_replace(max by (node) (avg_over_time(%(capacity)s{{{sel}}}[1h])), '
    '"side", "capacity", "", "")) * on (node) max by (node) (avg_over_time(%(price)s{{{sel}}}[1h]))%(scale)s')
EGRESS = ("sum(increase(kubecost_pod_network_egress_bytes_total{{{sel}, %s}}[1h])) / 2^30 * "
          "scalar(avg_over_time(kubecost_network_%s_egress_cost{{{sel}}}[1h]))")
CLUSTER_COST = [
    "sum(" + NODE_RESOURCE % dict(alloc="container_cpu_allocation", resource="cpu",
                                  capacity="kube_node_status_capacity_cpu_cores", price="node_cpu_hourly_cost",
                                  scale="") + ")",
    "sum(" + NODE_RESOURCE % dict(alloc="container_memory_allocation_bytes", resource="memory",
                                  capacity="kube_node_status_capacity_memory_bytes", price="node_ram_hourly_cost",
                                  scale=" / 2^30") + ")",
    "sum(" + NODE_RESOURCE % dict(alloc="container_gpu_allocation", resource="nvidia_com_gpu",
                                  capacity="node_gpu_count", price="node_gpu_hourly_cost", scale="") + ")",
    "sum(avg_over_time(pv_hourly_cost{{{sel}}}[1h]) * on (persistentvolume) group_left "
    "avg_over_time(kube_persistentvolume_capacity_bytes{{{sel}}}[1h])) / 2^30",
    "sum(avg_over_time(kubecost_load_balancer_cost{{{sel}}}[1h]))",
    "sum(avg_over_time(kubecost_cluster_management_cost{{{sel}}}[1h]))",
    EGRESS % ('internet="true"', "internet"),
    EGRESS % ('internet="false", same_region="false"', "region"),
    EGRESS % ('internet="false", same_region="true", same_zone="false"', "zone"),
]
NODE_TOTAL_SHORTCUT = [
    'sum(avg_over_time(node_total_hourly_cost{{{sel}}}[1h]))',
    *CLUSTER_COST[3:6],
]
# The endpoints whose request-time answer reads only kubecost_* series: timed over the whole window.
KUBECOST_SERIES_ONLY = ("kubecost_metrics", "kubecost_savings")
PROMQL = {
    "kubecost_cluster_costs": CLUSTER_COST,
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


# How fill() derives a copy's columns: the tenant and the hour, and the hour inside each point's JSON text.
COPIED = {"cloud_account_id": "copy_tenant", "hour": "hour - toIntervalHour(n.number)",
          "point_json": "concat('{\"timestamp\":', toString(toUnixTimestamp(hour) - n.number * 3600), "
                        "substring(point_json, position(point_json, ',')))"}


FILLED = ("k8s_expenses", "kubecost_metrics_hourly", "k8s_expense_runs")


def fill(sink: ClickHouseSink, days: int, tenant: str = TENANT, tables: tuple[str, ...] = FILLED,
         derived: dict[str, str] | None = None) -> int:
    """Copy the processed hour (rows, metric samples, ledger) to every earlier hour of the window and to the
    neighbour tenants; returns the tenant's row count. ``derived``: more columns' expressions for the copies (over
    ``COPIED``'s)."""
    copied = {**COPIED, **(derived or {})}
    tenants = [tenant] + [f"neighbour-{i}" for i in range(1, NEIGHBOURS + 1)]
    for table in tables:
        names = [r[0] for r in sink.query(f"SELECT name FROM system.columns WHERE table = '{table}' "
                                          "AND database = currentDatabase() AND default_kind != 'ALIAS' "
                                          "ORDER BY position")]
        select = ", ".join(copied.get(c, c) for c in names)
        sink.client.command(
            f"INSERT INTO {table} ({', '.join(names)}) SELECT {select} "
            f"FROM {table} ARRAY JOIN {{tenants:Array(String)}} AS copy_tenant CROSS JOIN numbers({days * 24}) AS n "
            "WHERE cloud_account_id = {t:String} AND (n.number > 0 OR copy_tenant != {t:String})",
            parameters={"t": tenant, "tenants": tenants})
    for table in tables:
        sink.client.command(f"OPTIMIZE TABLE {table} FINAL")
    return sink.query("SELECT count() FROM k8s_expenses_current WHERE cloud_account_id = {t:String}", {"t": tenant})[0][0]


def measure_reads(url: str, tenant: str, last: int, prom_hours: int, days: int, requests_per_endpoint: int,
                  workdir: Path) -> dict:
    """The read figures for ``tenant``, whose raw series Prometheus at ``url`` holds for the ``prom_hours`` hours
    up to ``last`` (the hour the worker processes and the window then copies)."""
    prom_start = last - (prom_hours - 1) * 3600
    config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{workdir / 'ch-reads'}"})
    sink = wiring.open_sink(config)
    wiring.apply_schema(sink, config)
    thanos = wiring.thanos_client(config)
    run_hours(wiring.build_pipeline(config, sink), [tenant], [last])
    rows = fill(sink, days, tenant)
    stored_hour = sink.query("SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String} "
                             "AND hour = toDateTime({h:Int64}, 'UTC')", {"t": tenant, "h": last})[0][0]
    sink.close()

    # request-time answers from Prometheus
    selector = f'tenant_id="{tenant}"'
    names = sorted({s["metric"].get("__name__", "") for s in thanos.query(
        f'count by (__name__) ({{__name__=~"kubecost_.+", {selector}}})', last + 1800)})

    def request_time(client: ThanosClient, endpoint: str, first_hour: int) -> float:
        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            for promql in PROMQL[endpoint]:
                for name in (names if "{name}" in promql else [""]):
                    client.query_range(promql.format(sel=selector, name=name), first_hour + 3600 - 0.001,
                                       last + 3600 - 0.001, 3600)
            timings.append(time.perf_counter() - t0)
        return statistics.median(timings)

    def answer(queries: list[str]) -> float:
        return sum(float(r["value"][1]) for q in queries
                   for r in thanos.query(q.format(sel=selector), last + 3600 - 0.001))

    cluster_cost_hour = {"stored": stored_hour, "request_time": answer(PROMQL["kubecost_cluster_costs"]),
                         "node_total_shortcut": answer(NODE_TOTAL_SHORTCUT)}
    prom = {}
    for endpoint in PROMQL:
        if endpoint in KUBECOST_SERIES_ONLY:
            continue
        # a fixed cost per request plus a cost per hour of window: fitted on 1 hour and on all held hours
        one, held = request_time(thanos, endpoint, last), request_time(thanos, endpoint, prom_start)
        per_hour = max(held - one, 0.0) / max(prom_hours - 1, 1)
        prom[endpoint] = {"held_ms": held * 1000, "ms": (one - per_hour + per_hour * days * 24) * 1000,
                          "how": "scaled"}
    with LocalPrometheus(kubecost_series_tsdb(thanos, selector, last, prom_hours, days, workdir)) as whole_window:
        client = ThanosClient(ThanosSettings.from_config(load_config(
            {"KCW_THANOS_URL": whole_window, "KCW_CLICKHOUSE_URL": config.clickhouse_url})))
        for endpoint in KUBECOST_SERIES_ONLY:
            seconds = request_time(client, endpoint, last + 3600 - days * 86400)
            prom[endpoint] = {"held_ms": seconds * 1000, "ms": seconds * 1000, "how": "measured"}

    window = {"cloud_account_id": tenant, "start_date": last + 3600 - days * 86400, "end_date": last + 3600}
    session = requests.Session()
    session.headers.update({"Secret": SECRET, "Content-type": "application/json"})
    endpoints = []
    with api_process(config.clickhouse_url) as (base, _):
        for endpoint, extra in ENDPOINTS.items():
            path = endpoint.split(" ")[0]
            latencies, size = [], 0
            for _ in range(requests_per_endpoint):
                t0 = time.perf_counter()
                response = session.get(f"{base}/metroculus/v2/{path}", params={**window, **extra})
                latencies.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text[:300]
                size = len(response.content)
            p50 = percentile(latencies, 0.5)
            endpoints.append({"endpoint": endpoint, "p50_ms": p50 * 1000, "p95_ms": percentile(latencies, 0.95) * 1000,
                              "bytes": size, "prom_held_ms": prom[endpoint]["held_ms"],
                              "prom_ms": prom[endpoint]["ms"], "prom_how": prom[endpoint]["how"],
                              "speedup": prom[endpoint]["ms"] / 1000 / p50})
    return {"rows": rows, "endpoints": endpoints, "cluster_cost_hour": cluster_cost_hour}


def measure_streamed_year(url: str, tenant: str, last: int, days: int, workdir: Path) -> dict:
    """``days`` of the tenant's kubecost_metrics in one request (see ``measure_stream``)."""
    return measure_stream(url, tenant, last, days, workdir, "kubecost_metrics", {},
                          ("kubecost_metrics_hourly", "k8s_expense_runs"), "kubecost_metric_points_hourly")


def measure_streamed_breakdown(url: str, tenant: str, last: int, days: int, workdir: Path) -> dict:
    """``days`` of the tenant's k8s_expenses per pod and hour in one request (see ``measure_stream``)."""
    return measure_stream(url, tenant, last, days, workdir, "k8s_expenses", {"aggregate": "pod", "step": "hour"},
                          FILLED, "k8s_expenses")


def measure_stream(url: str, tenant: str, last: int, days: int, workdir: Path, endpoint: str, extra: dict,
                   tables: tuple[str, ...], counted: str) -> dict:
    """``days`` of the tenant (its hour processed by the worker, ``tables`` copied back over the days, the
    neighbours alike) streamed by ``kubecost-worker serve`` in one request from 0 to the last hour: the server's
    RSS at rest and at its peak (VmHWM: the most it ever held; RssAnon sampled), the time to the first byte of
    the body and to its last, the body's size and the tenant's rows in ``counted``."""
    config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{workdir / f'ch-{endpoint}-{days}'}"})
    sink = wiring.open_sink(config)
    wiring.apply_schema(sink, config)
    run_hours(wiring.build_pipeline(config, sink), [tenant], [last])
    fill(sink, days, tenant, tables=tables)
    texts = sink.query(f"SELECT count() FROM {counted} WHERE cloud_account_id = {{t:String}}", {"t": tenant})[0][0]
    sink.close()
    window = {"cloud_account_id": tenant, "start_date": 0, "end_date": last + 3600, **extra}
    with api_process(config.clickhouse_url) as (base, pid):
        at_rest, anon_at_rest = status_mb(pid, "VmRSS"), status_mb(pid, "RssAnon")
        anon_peak = [anon_at_rest]
        sampling = threading.Event()

        def sample_anon() -> None:  # the kernel keeps a peak of the total RSS only
            while not sampling.is_set():
                anon_peak[0] = max(anon_peak[0], status_mb(pid, "RssAnon"))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample_anon, daemon=True)
        sampler.start()
        began = time.perf_counter()
        response = requests.get(f"{base}/metroculus/v2/{endpoint}", params=window, stream=True, timeout=600,
                                headers={"Secret": SECRET, "Content-type": "application/json"})
        assert response.status_code == 200, response.text[:300]
        first_byte, size, head, tail = None, 0, b"", b""
        for chunk in response.iter_content(1 << 20):
            first_byte = first_byte if first_byte is not None else time.perf_counter() - began
            head, tail, size = head or chunk[:40], (tail + chunk)[-8:], size + len(chunk)
        total = time.perf_counter() - began
        sampling.set()
        sampler.join()
        peak = status_mb(pid, "VmHWM")
    assert head.startswith(b'{"cloud_account_id":') and tail.rstrip(b"}").endswith(b"]"), (head, tail)
    return {"endpoint": endpoint, "days": days, "texts": texts, "bytes": size, "at_rest_mb": at_rest, "peak_rss_mb": peak,
            "anon_at_rest_mb": anon_at_rest, "anon_peak_mb": anon_peak[0], "first_byte_ms": first_byte * 1000,
            "total_s": total}


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def streamed_year_lines(year: dict, pods: int = 2000, what: str = "") -> list[tuple[str, str, str, bool | None]]:
    """The bench table's rows for ``measure_stream``: (figure, measured, target, met). The embedded engine's code
    (libchdb, ~300 MB) is file-backed RSS from start-up on: the anonymous part is what the server allocates, and
    all a server without chDB (KCW_CLICKHOUSE_URL=http://...) holds."""
    what = what or year["endpoint"]
    return [
        (f"{what} streamed, {year['days']} days of a {pods:,}-pod tenant: serve's peak RSS, embedded",
         f"{year['peak_rss_mb']:.0f} MB ({year['at_rest_mb']:.0f} MB at rest)", "<= 300 MB",
         year["peak_rss_mb"] <= 300),
        ("  of it anonymous (allocated; the rest is libchdb's code)",
         f"{year['anon_peak_mb']:.0f} MB ({year['anon_at_rest_mb']:.0f} MB at rest)", "<= 300 MB",
         year["anon_peak_mb"] <= 300),
        ("  added by the request (peak - at rest)", f"{year['peak_rss_mb'] - year['at_rest_mb']:.0f} MB", "", None),
        ("  time to first byte; to the last", f"{year['first_byte_ms']:.0f} ms; {year['total_s']:.1f} s", "", None),
        ("  body", f"{year['bytes'] / 1e6:,.0f} MB ({year['texts']:,} stored rows of the tenant)", "", None),
    ]


def kubecost_series_tsdb(thanos: ThanosClient, selector: str, last: int, prom_hours: int, days: int,
                         workdir: Path) -> Path:
    """A TSDB of the tenant's ``kubecost_*`` series over the whole window: the hours Prometheus holds, repeated
    back over the days (as the stored side copies its hour). They are all that kubecost_metrics and
    kubecost_savings read, and few enough to hold for 30 days, so those two are timed over the real window."""
    held = prom_hours * 3600
    found = thanos.samples(f'{{__name__=~"kubecost_.+", {selector}}}[{held}s]', last + 3600 - 0.001)
    by_name: dict[str, list[dict]] = {}
    for series in found:
        by_name.setdefault(series["metric"]["__name__"], []).append(series)
    openmetrics = workdir / "kubecost-series.om"
    with open(openmetrics, "w", encoding="utf-8", newline="\n") as out:
        for name, family in sorted(by_name.items()):
            out.write(f"# TYPE {name} unknown\n")
            for series in family:
                labels = ",".join(f'{k}="{openmetrics_escape(v)}"' for k, v in sorted(series["metric"].items())
                                  if k != "__name__")
                for tile in range(days * 24 // prom_hours - 1, -1, -1):
                    out.write("".join(f"{name}{{{labels}}} {value} {float(ts) - tile * held!r}\n"
                                      for ts, value in series["values"]))
        out.write("# EOF\n")
    create_blocks(openmetrics, workdir / "tsdb-kubecost-series")
    return workdir / "tsdb-kubecost-series"


def openmetrics_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@contextlib.contextmanager
def api_process(clickhouse_url: str):
    """``kubecost-worker serve`` on the stored data, in a process of its own as deployed (a client in the
    server's process would compete with it for the interpreter); yields its base URL and its pid."""
    port = free_port()
    env = worker_env(KCW_CLICKHOUSE_URL=clickhouse_url, KCW_CLUSTER_SECRET=SECRET, KCW_API_HOST="127.0.0.1",
                     KCW_API_PORT=str(port), KCW_METRICS_PORT="0", KCW_LOG_LEVEL="warning")
    process = subprocess.Popen([str(WORKER), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kubecost-worker serve did not become ready: {process.stderr.read()[-2000:]}")
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--prom-hours", type=int, default=4)
    parser.add_argument("--stream-days", type=int, default=365,
                        help="days of kubecost_metrics streamed in one request (0: leave out)")
    parser.add_argument("--breakdown-pods", type=int, default=100,
                        help="pods of the tenant whose 366 days of k8s_expenses per pod and hour are streamed (0: leave out)")
    args = parser.parse_args()
    logs.configure("text", "warning")
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-api-"))
    last = last_closed_hour()
    prom_start = last - (args.prom_hours - 1) * 3600
    print(f"simulating {args.pods} pods for {args.prom_hours} h and backfilling Prometheus...", file=sys.stderr)
    sim = write_simulation(workdir / "sim", [TENANT], prom_start, args.prom_hours, nodes=max(3, args.pods // 50),
                           pods=args.pods)
    create_blocks(Path(sim["openmetrics"]), workdir / "tsdb")
    with LocalPrometheus(workdir / "tsdb") as url:
        result = measure_reads(url, TENANT, last, args.prom_hours, args.days, args.requests, workdir)
        year = measure_streamed_year(url, TENANT, last, args.stream_days, workdir) if args.stream_days else None
    breakdown = None
    if args.breakdown_pods:
        print(f"simulating {args.breakdown_pods} pods for 1 h for the per-pod breakdown...", file=sys.stderr)
        small = write_simulation(workdir / "sim-small", [TENANT], last, 1, nodes=3, pods=args.breakdown_pods)
        create_blocks(Path(small["openmetrics"]), workdir / "tsdb-small")
        with LocalPrometheus(workdir / "tsdb-small") as url:
            breakdown = measure_streamed_breakdown(url, TENANT, last, 366, workdir)
    print(f"\n{args.pods} pods, {args.days} days stored ({result['rows']:,} rows of the tenant, {NEIGHBOURS} "
          f"neighbours alike); {args.requests} requests per endpoint over the whole window\n")
    prometheus = f"request-time Prometheus, {args.days} d"
    print(f"{'endpoint':<32} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>12}   {prometheus:>34} {'speed-up (p50)':>15}")
    for e in result["endpoints"]:
        how = ("measured" if e["prom_how"] == "measured" else
               f"scaled from {e['prom_held_ms']:,.0f} ms over {args.prom_hours} h")
        print(f"{e['endpoint']:<32} {e['p50_ms']:>8.1f} {e['p95_ms']:>8.1f} {e['bytes']:>12,}   "
              f"{e['prom_ms']:>9,.0f} ms ({how}){'':>{max(0, 19 - len(how))}} {e['speedup']:>14.1f}x")
    print(cluster_cost_line(result["cluster_cost_hour"]))
    streamed = [streamed_year_lines(year, args.pods)] if year else []
    streamed += [streamed_year_lines(breakdown, args.breakdown_pods, "k8s_expenses per pod and hour")] if breakdown else []
    for lines in streamed:
        print()
        for figure, measured, target, met in lines:
            print(f"{figure:<80} {measured:<32} {target:<10} {'' if met is None else ('yes' if met else 'NO')}")


def cluster_cost_line(costs: dict) -> str:
    def off(value: float) -> str:
        return f"{(value - costs['stored']) / costs['stored']:+.2%}"

    return (f"one hour's cluster cost: stored ${costs['stored']:.4f}; request-time PromQL "
            f"${costs['request_time']:.4f} ({off(costs['request_time'])}); node_total_hourly_cost shortcut "
            f"${costs['node_total_shortcut']:.4f} ({off(costs['node_total_shortcut'])})")


if __name__ == "__main__":
    main()
