"""Every performance figure of the service in one table, each next to its target, measured in one run.

    .venv/bin/python bench/run.py [--runs 5] [--skip-reads] [--only hour_2k,storage,...]

Needs Debian's prometheus and promtool, and RabbitMQ on 127.0.0.1:5672 (guest/guest), as the tests do. About
6 minutes on the project's 2-core machine; promtool peaks at about 8 GB while backfilling the 24 hours.

1. Simulates two tenants and backfills a local Prometheus with each: 24 hours of 2,000 pods, 2 hours of 10,000 (the
   second is timed: the first holds the counters' last samples before it).
2. Tenant-hour vs floor, per size: the worker's ``run_hour`` (fetch, model, insert, commit) into a store that does
   not hold the hour yet, next to the floor: one plain ``query_range`` over the same hour at the same step of every
   raw series the hour needs (``{__name__=~"<the metrics>", tenant_id="..."}``), the body read and discarded.
   Interleaved, median of ``--runs``. Also a rerun of the hour (the write replaces the hour's rows).
3. Memory, each in a fresh process (``bench/probe.py``): the 10,000-pod tenant-hour's peak RSS, with what the
   process held at rest before it (the interpreter and the embedded ClickHouse); the same fetch and model in a
   process without the embedded engine; RSS after the 1st and the 24th tenant-hour of a 24-hour backfill, and
   after the 72nd (the same 24 hours rerun twice): warm, memory must stay flat.
4. The worker against its peer (``bench/peer.py``, 6 hours of 2,000 pods): its ratios to the Prometheus work of
   OpenCost's queries for the same hours, beside their targets.
5. Backfill: the 24 hours of the 2,000-pod tenant as 24 jobs on RabbitMQ, with 1 and with 2 ``consume``
   processes (each on its own chDB path: embedded ClickHouse allows one process per path).
6. Storage: bytes per ``k8s_expenses`` row on disk after ``OPTIMIZE FINAL`` (``system.parts``), on the 24 hours the
   single consumer wrote, and rows per tenant per day; and the same on a 2,000-pod day with every column of the
   allocation record populated (``bench/storage.py``: a row per container, pod uids, requests and usage).
7. Reads: ``bench/api.py``'s figures (30 days of the 2,000-pod tenant stored, request-time Prometheus alongside),
   and a year of its ``kubecost_metrics`` streamed in one request (server RSS, time to first byte).
8. Only when ``--only`` names it, ``reconcile`` (about 8 minutes more): ``bench/reconcile.py``'s headline figures,
   reconciling a 2,000-pod day with its bill alone and beside 150 tenant-years, and the reconciled view against the
   plain one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api import (cluster_cost_line, measure_reads, measure_streamed_breakdown, measure_streamed_year,  # noqa: E402
                 streamed_year_lines)
from consumers import WORKER, consumer_env, delete_queues, run_consumers  # noqa: E402
import peer  # noqa: E402
from peer import TENANT, say, simulated  # noqa: E402
import reconcile  # noqa: E402

from kubecost_worker import logs, wiring  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.hours import last_closed_hour  # noqa: E402
from kubecost_worker.pipeline import run_hours  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus  # noqa: E402
from kubecost_worker.model.series import KEPT_PREFIX, NEEDED_METRICS  # noqa: E402
from kubecost_worker.store.cleanup import RUN_TABLES  # noqa: E402
from kubecost_worker.store.clickhouse import ClickHouseSink  # noqa: E402
from kubecost_worker.source.promql import names_matcher  # noqa: E402

PROBE = ROOT / "bench" / "probe.py"


def tenant_hour(url: str, hour: int, runs: int, workdir: Path, name: str) -> dict:
    """Median worker and floor seconds over interleaved runs; the store is emptied (untimed) before each run."""
    config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{workdir / f'ch-hour-{name}'}"})
    pipeline = wiring.build_pipeline(config)
    sink = pipeline.sink
    wiring.apply_schema(sink, config)
    selector = "{" + names_matcher(NEEDED_METRICS, [KEPT_PREFIX]) + f', tenant_id="{TENANT}"' + "}"
    worker, rerun, floor, rows, size = [], [], [], 0, 0
    for _ in range(runs):
        for table in (*RUN_TABLES, "k8s_expense_runs"):
            sink.client.command(f"TRUNCATE TABLE {table}")
        started = time.perf_counter()
        rows = pipeline.run_hour(TENANT, hour).record.rows_written
        worker.append(time.perf_counter() - started)
        started = time.perf_counter()
        pipeline.run_hour(TENANT, hour)
        rerun.append(time.perf_counter() - started)
        started = time.perf_counter()
        response = requests.get(f"{url}/api/v1/query_range", timeout=600,
                                params={"query": selector, "start": hour, "end": hour + 3600 - 60, "step": 60})
        size = len(response.content)
        floor.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text[:200]
    sink.close()
    return {"worker_s": statistics.median(worker), "rerun_s": statistics.median(rerun),
            "floor_s": statistics.median(floor), "floor_mb": size / 1e6, "rows": rows}


def probe(*args: str) -> dict:
    done = subprocess.run([sys.executable, str(PROBE), *args], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def consumers_backfill(url: str, first_hour: int, hours: int, count: int, workdir: Path) -> dict:
    env = consumer_env(url)
    subprocess.run([str(WORKER), "rerun", "--tenant", TENANT, "--start", str(first_hour),
                    "--end", str(first_hour + hours * 3600)], env=env, check=True, capture_output=True)
    seconds = run_consumers(count, env, workdir, hours)
    delete_queues(env["KCW_QUEUE_PREFIX"])
    return {"consumers": count, "seconds": seconds, "per_minute": hours / seconds * 60}


FIGURES = ("hour_10k", "memory_10k", "hour_2k", "peer", "backfill_rss", "consumers", "storage", "reads")
ON_REQUEST = ("reconcile",)  # minutes of their own: measured when --only names them, never by default


def direct_backfill(url: str, first_hour: int, hours: int, workdir: Path) -> Path:
    """The hours written by one process's pipeline (no broker): what ``storage`` measures without consumers."""
    path = workdir / "direct"
    config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{path}"})
    pipeline = wiring.build_pipeline(config)
    wiring.apply_schema(pipeline.sink, config)
    run_hours(pipeline, [TENANT], [first_hour + i * 3600 for i in range(hours)])
    pipeline.sink.close()
    return path


def storage(ch_path: Path) -> dict:
    sink = ClickHouseSink.open(f"chdb://{ch_path}")
    for table in ("k8s_expenses", "k8s_expenses_namespace_hourly", "kubecost_metrics_hourly",
                  "kubecost_metric_points_hourly", "k8s_expense_runs"):
        sink.client.command(f"OPTIMIZE TABLE {table} FINAL")
    tables = sink.query("SELECT table, sum(bytes_on_disk) FROM system.parts WHERE active "
                        "AND database = currentDatabase() GROUP BY table ORDER BY table")
    rows, on_disk, compressed, uncompressed = sink.query(
        "SELECT sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), sum(data_uncompressed_bytes) "
        "FROM system.parts WHERE active AND database = currentDatabase() AND table = 'k8s_expenses'")[0]
    columns = sink.query(
        "SELECT name, data_compressed_bytes FROM system.columns WHERE database = currentDatabase() "
        "AND table = 'k8s_expenses' ORDER BY data_compressed_bytes DESC LIMIT 5")
    days = sink.query("SELECT count() / (dateDiff('hour', min(hour), max(hour)) + 1) * 24 FROM k8s_expenses_current "
                      "WHERE cloud_account_id = {t:String}", {"t": TENANT})[0][0]
    tenant_hours = sink.query("SELECT count() FROM k8s_expense_current_runs")[0][0]
    sink.close()
    return {"rows": int(rows), "bytes_per_row": on_disk / rows, "compressed_per_row": compressed / rows,
            "uncompressed_per_row": uncompressed / rows, "rows_per_day": float(days),
            "largest_columns": [(name, size / rows) for name, size in columns],
            "tenant_day_kb": {table: size * 24 / tenant_hours / 1000 for table, size in tables}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-reads", action="store_true", help="leave out the read-layer figures (about 3 min)")
    parser.add_argument("--only", type=lambda v: set(v.split(",")), default=None, metavar="FIGURES",
                        help=f"a comma-separated subset of {','.join(FIGURES + ON_REQUEST)} (storage without "
                             "consumers: the 24 hours written by one process directly; reconcile only when named)")
    args = parser.parse_args()
    wanted = lambda figure: args.only is None or figure in args.only
    logs.configure("text", "warning")
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-"))
    last = last_closed_hour()
    first = last - 23 * 3600
    out: dict = {}
    if wanted("hour_10k") or wanted("memory_10k"):
        large = simulated(workdir, "10k", 10000, last - 3600, 2)  # the timed hour and the one before
        with LocalPrometheus(large) as url:
            if wanted("hour_10k"):
                say("10,000 pods: tenant-hour vs floor")
                out["hour_10k"] = tenant_hour(url, last, args.runs, workdir, "10k")
            if wanted("memory_10k"):
                say("10,000 pods: memory")
                out["memory_10k"] = probe("tenant-hour", url, TENANT, str(last))
                out["model_only_10k"] = probe("model-only", url, TENANT, str(last))
    if wanted("peer"):
        say("2,000 pods: the worker against OpenCost's queries (bench/peer.py)")
        peer.SUBQUERY_LABEL = "container"
        out["peer_2k"] = peer.measure_size(2000, 6, workdir)
    small_figures = ("hour_2k", "backfill_rss", "consumers", "storage", "reads")
    if any(wanted(f) for f in small_figures):
        # the tenant-hour alone needs its hour and the one before (a counter's last sample before the hour: without
        # it the source fetches every pod's samples, as for a tenant's first hour)
        whole_day = any(wanted(f) for f in small_figures[1:])
        small = simulated(workdir, "2k", 2000, first if whole_day else last - 3600, 24 if whole_day else 2)
        with LocalPrometheus(small) as url:
            if wanted("hour_2k"):
                say("2,000 pods: tenant-hour vs floor")
                out["hour_2k"] = tenant_hour(url, last, args.runs, workdir, "2k")
            if wanted("backfill_rss"):
                say("2,000 pods: RSS over a 24-hour backfill in one process")
                out["backfill_rss"] = probe("backfill", url, TENANT, str(first), "24", "3")
            if wanted("consumers"):
                say("2,000 pods: 24 hours through RabbitMQ with 1, then 2 consumers")
                out["consumers"] = [consumers_backfill(url, first, 24, count, workdir) for count in (1, 2)]
            if wanted("storage"):
                say("storage after OPTIMIZE FINAL")
                out["storage"] = storage(workdir / "consumer-1-0" if wanted("consumers")
                                         else direct_backfill(url, first, 24, workdir))
            if wanted("reads") and not args.skip_reads:
                say("reads: 30 days of the 2,000-pod tenant stored, request-time Prometheus alongside")
                out["reads"] = measure_reads(url, TENANT, last, 4, 30, 30, workdir)
                say("reads: a year of the 2,000-pod tenant's kubecost_metrics streamed in one request")
                out["streamed_year"] = measure_streamed_year(url, TENANT, last, 365, workdir)
    if wanted("reads") and not args.skip_reads:
        with LocalPrometheus(simulated(workdir, "100", 100, last, 1)) as url:
            say("reads: 366 days of a 100-pod tenant's k8s_expenses per pod and hour streamed in one request")
            out["streamed_breakdown"] = measure_streamed_breakdown(url, TENANT, last, 366, workdir)
    if args.only is not None and "reconcile" in args.only:
        say("reconciliation with the bill: a 2,000-pod day alone and beside 150 tenant-years (bench/reconcile.py)")
        out["reconcile"] = reconcile.measure(workdir / "reconcile", runs=args.runs, say=say)
    out["minutes"] = (time.monotonic() - began) / 60
    (workdir / "results.json").write_text(json.dumps(out, indent=2))
    print_table(out)
    say(f"done in {out['minutes']:.1f} min; raw figures in {workdir / 'results.json'}")


def print_table(out: dict) -> None:
    rows: list[tuple[str, str, str, str]] = []

    def add(figure: str, measured: str, target: str = "", met: bool | None = None) -> None:
        rows.append((figure, measured, target, "" if met is None else ("yes" if met else "NO")))

    for key, label in (("hour_2k", "2,000"), ("hour_10k", "10,000")):
        if key not in out:
            continue
        h = out[key]
        ratio = h["worker_s"] / h["floor_s"]
        add(f"tenant-hour, {label} pods: worker / floor", f"{h['worker_s']:.2f} s / {h['floor_s']:.2f} s = {ratio:.2f}",
            "<= 1.25", ratio <= 1.25)
        add("  rerun of that hour (replaces its rows); floor body", f"{h['rerun_s']:.2f} s; {h['floor_mb']:.1f} MB")
    if "peer_2k" in out:
        for name, what, ratio, target in peer.ratios(out["peer_2k"]):
            add(f"tenant-hour, 2,000 pods, {name}: {what} / the peer's", f"{ratio:.2f}",
                f"<= {target}" if target else "", ratio <= target if target else None)
    if "memory_10k" in out:
        m, model_only = out["memory_10k"], out["model_only_10k"]
        add("peak RSS, 10,000-pod tenant-hour, embedded ClickHouse", f"{m['peak_rss_mb']:.0f} MB", "<= 400 MB",
            m["peak_rss_mb"] <= 400)
        add("  of which at rest before the hour (interpreter, chDB)", f"{m['at_rest_mb']:.0f} MB")
        add("  anonymous memory's peak (RssAnon: allocated, not libchdb's code)", f"{m['anon_peak_mb']:.0f} MB",
            "<= 400 MB", m["anon_peak_mb"] <= 400)
        add("  added by the tenant-hour", f"{m['peak_rss_mb'] - m['at_rest_mb']:.0f} MB", "<= 400 MB",
            m["peak_rss_mb"] - m["at_rest_mb"] <= 400)
        add("peak RSS, same fetch + model without embedded engine", f"{model_only['peak_rss_mb']:.0f} MB", "<= 400 MB",
            model_only["peak_rss_mb"] <= 400)
    if "backfill_rss" in out:
        b = out["backfill_rss"]
        growth = b["rss_after_last_mb"] / b["rss_after_hours_mb"]
        add("RSS after tenant-hour 1 / 24 of a backfill (2,000 pods)",
            f"{b['rss_after_first_mb']:.0f} / {b['rss_after_hours_mb']:.0f} MB")
        add(f"  after {b['tenant_hours']} (the 24 hours twice more): growth since 24",
            f"{b['rss_after_last_mb']:.0f} MB: {growth:.2f}x", "no growth (<= 1.1x)", growth <= 1.1)
    for c in out.get("consumers", []):
        add(f"backfill 24 h x 2,000 pods, {c['consumers']} consumer{'s' if c['consumers'] > 1 else ''} (RabbitMQ)",
            f"{c['seconds']:.0f} s, {c['per_minute']:.0f} tenant-hours/min")
    if "storage" in out:
        s = out["storage"]
        add("k8s_expenses bytes per row on disk (after merges)", f"{s['bytes_per_row']:.1f} B", "<= 40 B",
            s["bytes_per_row"] <= 40)
        add("  rows per tenant per day (2,000 pods)", f"{s['rows_per_day']:,.0f}")
        kb = s["tenant_day_kb"]
        add("  kB/tenant/day: rollup / samples / points / ledger",
            f"{kb['k8s_expenses_namespace_hourly']:.0f} / {kb['kubecost_metrics_hourly']:.0f} / "
            f"{kb['kubecost_metric_points_hourly']:.0f} / {kb['k8s_expense_runs']:.0f} "
            f"(k8s_expenses: {kb['k8s_expenses']:,.0f})")
    for e in out.get("reads", {}).get("endpoints", []):
        add(f"read {e['endpoint']}, 30 days: p50 / p95", f"{e['p50_ms']:.0f} / {e['p95_ms']:.0f} ms", "p50 <= 50 ms",
            e["p50_ms"] <= 50)
        add(f"  request-time Prometheus ({'30 d' if e['prom_how'] == 'measured' else 'scaled to 30 d'}); speed-up",
            f"{e['prom_ms']:,.0f} ms; {e['speedup']:,.1f}x", ">= 50x", e["speedup"] >= 50)
    if "streamed_year" in out:
        for row in streamed_year_lines(out["streamed_year"]):
            add(*row)
    if "streamed_breakdown" in out:
        for row in streamed_year_lines(out["streamed_breakdown"], 100, "k8s_expenses per pod and hour"):
            add(*row)
    if "reconcile" in out:
        for row in reconcile.figures(out["reconcile"]):
            add(*row)
    widths = [max(len(r[i]) for r in rows + [("figure", "measured", "target", "met")]) for i in range(4)]
    header = ("figure", "measured", "target", "met")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if "reads" in out:
        print(cluster_cost_line(out["reads"]["cluster_cost_hour"]))


if __name__ == "__main__":
    main()
