"""Backfill throughput and the load on Thanos: 24 hours of a 2,000-pod tenant hour by hour, then batched.

    .venv/bin/python bench/batched.py [--pods 2000] [--hours 24] [--tsdb DIR]

A simulated tenant (the hour before the first one simulated too) in a local Prometheus; the same 24 hours are
backfilled three times into fresh embedded ClickHouse paths, interleaved with the floor:
- the floor: one plain ``query_range`` of each hour's raw series (every series the hour needs, step 60 s), as in
  ``bench/run.py``, summed over the hours;
- hour by hour (``KCW_BATCH_HOURS=1``, the path before batching);
- batched (the defaults: the tenant's first hour alone, then batches of consecutive hours).
Printed: worker seconds against the floor, and per tenant-hour the queries, bytes and samples Thanos answered, as
the ledger records them (``k8s_expense_runs.thanos_*``). Both backfills store the same rows (checked).
``--tsdb`` reuses a Prometheus data directory an earlier run simulated (printed at its end). ``--profile`` runs
the batched backfill under cProfile instead; ``--prometheus-time`` asks every query with ``stats=all`` and sums
Prometheus's own evaluation time (``execTotalTime``) of the batched backfill's queries and of the floor's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubecost_worker import logs, wiring  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks  # noqa: E402
from kubecost_worker.devtools.simulation import write_simulation  # noqa: E402
from kubecost_worker.hours import last_closed_hour  # noqa: E402
from kubecost_worker.model.series import KEPT_PREFIX, NEEDED_METRICS  # noqa: E402
from kubecost_worker.pipeline import run_hours  # noqa: E402
from kubecost_worker.source.promql import names_matcher  # noqa: E402

TENANT = "bench-tenant"
TARGET = 0.25


def backfill(url: str, hours: list[int], path: Path, batch_hours: int | None) -> dict:
    """The hours backfilled into a fresh path, ``batch_hours`` a batch (None: the default)."""
    settings = {} if batch_hours is None else {"KCW_BATCH_HOURS": str(batch_hours)}
    config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{path}", **settings})
    pipeline = wiring.build_pipeline(config)
    wiring.apply_schema(pipeline.sink, config)
    started = time.perf_counter()
    done = run_hours(pipeline, [TENANT], hours)
    seconds = time.perf_counter() - started
    assert done.failed == 0 and done.done == len(hours), done.line()
    (queries, received, samples), = pipeline.sink.query(
        "SELECT avg(thanos_queries), avg(thanos_bytes), avg(thanos_samples) FROM k8s_expense_current_run_records")
    rows = pipeline.sink.query("SELECT toUnixTimestamp(hour), namespace, workload_name, pod, container, node, "
                               "round(total_cost, 9), round(cpu_core_hours, 9) FROM k8s_expenses_current ORDER BY ALL")
    pipeline.sink.close()
    return {"seconds": seconds, "queries": queries, "bytes": received, "samples": samples, "rows": rows}


def profile(url: str, hours: list[int], path: Path) -> None:
    import cProfile
    import pstats

    config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{path}"})
    pipeline = wiring.build_pipeline(config)
    wiring.apply_schema(pipeline.sink, config)
    pipeline.run_hour(TENANT, hours[0] - 3600)  # the tenant's size known: every hour below is batched
    profiler = cProfile.Profile()
    profiler.enable()
    done = run_hours(pipeline, [TENANT], hours)
    profiler.disable()
    print(done.line())
    pstats.Stats(profiler).sort_stats(os.environ.get("KCW_BENCH_SORT", "cumulative")).print_stats(30)


def prometheus_time(url: str, hours: list[int], path: Path) -> None:
    """What Prometheus itself spends evaluating the batched backfill's queries, against the floor's: every request
    asked with ``stats=all`` (the client's parameters wrapped here, a bench-only patch) and its ``execTotalTime``
    summed. One query at a time (``KCW_THANOS_PARALLEL_QUERIES=1``): each one's time is the server's work for it,
    not a wait for a core another query holds."""
    import threading

    from kubecost_worker.source import thanos

    spent = {"worker": 0.0}
    lock = threading.Lock()
    params, parse = thanos.ThanosClient._params, thanos.ThanosClient._parse

    def with_stats(self, query_params):
        return {**params(self, query_params), "stats": "all"}

    def timed_parse(path_, response, content, result_type):
        data = parse(path_, response, content, result_type)
        with lock:
            spent["worker"] += float((data.get("stats") or {}).get("timings", {}).get("execTotalTime", 0.0))
        return data

    thanos.ThanosClient._params, thanos.ThanosClient._parse = with_stats, staticmethod(timed_parse)
    config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{path}",
                          "KCW_THANOS_PARALLEL_QUERIES": "1"})
    pipeline = wiring.build_pipeline(config)
    wiring.apply_schema(pipeline.sink, config)
    pipeline.run_hour(TENANT, hours[0] - 3600)  # the tenant's size known: every hour below is batched
    spent["worker"] = 0.0
    started = time.perf_counter()
    run_hours(pipeline, [TENANT], hours)
    wall = time.perf_counter() - started
    selector = "{" + names_matcher(NEEDED_METRICS, [KEPT_PREFIX]) + f', tenant_id="{TENANT}"' + "}"
    floor_spent = 0.0
    for hour in hours:
        body = requests.get(f"{url}/api/v1/query_range", timeout=600, params={
            "query": selector, "start": hour, "end": hour + 3600 - 60, "step": 60, "stats": "all"}).json()
        floor_spent += body["data"]["stats"]["timings"]["execTotalTime"]
    n = len(hours)
    print(f"\n{n} batched hours, one query at a time: worker {wall / n:.3f} s an hour; Prometheus evaluating its queries "
          f"{spent['worker'] / n:.3f} s an hour; evaluating the floor's {floor_spent / n:.3f} s an hour")


def floor(url: str, hours: list[int]) -> float:
    selector = "{" + names_matcher(NEEDED_METRICS, [KEPT_PREFIX]) + f', tenant_id="{TENANT}"' + "}"
    started = time.perf_counter()
    for hour in hours:
        response = requests.get(f"{url}/api/v1/query_range", timeout=600,
                                params={"query": selector, "start": hour, "end": hour + 3600 - 60, "step": 60})
        assert response.status_code == 200, response.text[:200]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--tsdb", type=Path, help="a Prometheus data directory an earlier run simulated")
    parser.add_argument("--last", type=int, help="with --tsdb: unix seconds of the last simulated hour's start")
    parser.add_argument("--memory-pods", type=int, default=10000,
                        help="pods of the tenant whose batched backfill's peak RSS is measured (0: leave out)")
    parser.add_argument("--memory-hours", type=int, default=5)
    parser.add_argument("--profile", action="store_true",
                        help="instead: the batched backfill under cProfile, its 30 costliest calls by cumulative time "
                             "(KCW_BENCH_SORT=tottime: by their own time)")
    parser.add_argument("--prometheus-time", action="store_true",
                        help="instead: Prometheus's own evaluation time of the batched queries and of the floor's")
    args = parser.parse_args()
    logs.configure("text", "error")  # the simulated unpriced node warns every hour
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-batched-"))
    last = args.last if args.tsdb else last_closed_hour()
    first = last - (args.hours - 1) * 3600
    tsdb = args.tsdb
    if tsdb is None:
        print(f"simulating {args.pods} pods for {args.hours + 1} h and backfilling Prometheus...", file=sys.stderr)
        sim = write_simulation(workdir / "sim", [TENANT], first - 3600, args.hours + 1,
                               nodes=max(3, args.pods // 50), pods=args.pods)
        tsdb = workdir / "tsdb"
        create_blocks(Path(sim["openmetrics"]), tsdb)
        Path(sim["openmetrics"]).unlink()
    with LocalPrometheus(tsdb) as url:
        hours = list(range(first, last + 3600, 3600))
        if args.profile:
            profile(url, hours, workdir / "ch-profile")
            return
        if args.prometheus_time:
            prometheus_time(url, hours, workdir / "ch-prometheus-time")
            return
        print("hour by hour...", file=sys.stderr)
        alone = backfill(url, hours, workdir / "ch-alone", 1)
        floor_first = floor(url, hours)
        print("batched...", file=sys.stderr)
        batched = backfill(url, hours, workdir / "ch-batched", None)
        floor_second = floor(url, hours)
    assert alone["rows"] == batched["rows"], "the two backfills stored different rows"
    floor_s = (floor_first + floor_second) / 2
    print(f"\n{args.hours} hours of a {args.pods}-pod tenant ({len(batched['rows']):,} rows, the same both ways); "
          f"floor {floor_s:.2f} s ({floor_first:.2f} / {floor_second:.2f})\n")
    print(f"{'backfill':<16} {'seconds':>8} {'/ floor':>8} {'queries/h':>10} {'MB/h':>8} {'samples/h':>10}")
    for name, figures in (("hour by hour", alone), ("batched", batched)):
        print(f"{name:<16} {figures['seconds']:>8.2f} {figures['seconds'] / floor_s:>8.2f} {figures['queries']:>10.1f} "
              f"{figures['bytes'] / 1e6:>8.2f} {figures['samples']:>10,.0f}")
    ratio = batched["seconds"] / floor_s
    print(f"\nbatched worker / floor: {ratio:.2f} (target <= {TARGET}: {'yes' if ratio <= TARGET else 'NO'})")
    print(f"the Prometheus data: {tsdb} (--tsdb {tsdb} --last {last} to measure again)")
    if args.memory_pods:
        memory(args.memory_pods, args.memory_hours, workdir)


def memory(pods: int, hours: int, workdir: Path) -> None:
    """Peak RSS of a batched backfill of ``hours`` hours of a ``pods``-pod tenant, each in a fresh process
    (``bench/probe.py``): without the embedded engine (a worker writing to a ClickHouse server), and with it."""
    import json
    import subprocess

    last = last_closed_hour()
    first = last - (hours - 1) * 3600
    print(f"\nsimulating {pods} pods for {hours + 1} h for the memory figures...", file=sys.stderr)
    sim = write_simulation(workdir / "sim-memory", [TENANT], first - 3600, hours + 1, nodes=max(3, pods // 50),
                           pods=pods)
    create_blocks(Path(sim["openmetrics"]), workdir / "tsdb-memory", block_hours=2)  # 72 h blocks: 20 GB here
    Path(sim["openmetrics"]).unlink()
    probe = ROOT / "bench" / "probe.py"
    with LocalPrometheus(workdir / "tsdb-memory") as url:
        figures = {}
        for kind in ("batched-model-only", "batched"):
            done = subprocess.run([sys.executable, str(probe), kind, url, TENANT, str(first), str(hours)],
                                  check=True, capture_output=True, text=True)
            figures[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    alone, engine = figures["batched-model-only"], figures["batched"]
    print(f"\n{hours} hours of a {pods}-pod tenant, batched ({alone['batches']} batches of hours, "
          f"{alone['series']:,} series an hour):")
    print(f"  peak RSS without the embedded engine: {alone['peak_rss_mb']:.0f} MB "
          f"(at rest {alone['at_rest_mb']:.0f} MB; target <= 400 MB: {'yes' if alone['peak_rss_mb'] <= 400 else 'NO'})")
    print(f"  peak RSS with the embedded engine:    {engine['peak_rss_mb']:.0f} MB (at rest {engine['at_rest_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
