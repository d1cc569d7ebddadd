"""Where a tenant-hour's cost goes: Prometheus CPU per query the worker sends, and the worker's CPU per stage.

    .venv/bin/python bench/hour_profile.py [--pods 2000] [--hours 6]

Simulates one tenant (the project's simulator) for ``--hours`` hours and the hour before, backfills a local
Prometheus, then for the hours fetched one at a time (``fetch_hour``, the scheduled path) and as one batch
(``fetch_hours``, a backfill):

- each query the source sent, replayed 5 times one after the other with nothing else running, and the Prometheus
  process's CPU seconds (utime + stime from /proc) it took, per query and in all, per tenant-hour;
- the worker's own CPU per tenant-hour by stage (``time.process_time``, this process): the batch's shared queries
  (its summaries' range queries and its hours' samples, parsed), each hour's reads (its window of the samples,
  re-fetched pods, summaries made), the model, and the
  write of the batch's rows into an embedded ClickHouse (one insert per table, the ledger's commit records; each
  insert into a MergeTree table, and each materialized view it feeds, makes a part: about 10 ms in chDB 26.9
  however few its rows).

The first figure is what Thanos is asked; the second what this process spends: together, what is left of a
tenant-hour to make cheaper. Last, the floor of the first (``floor``): the least any exact fetch could ask of
Prometheus, against the peer's queries (``bench/peer.py``) over the same hours.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peer import TENANT, peer, prometheus_cpu, say, simulated_hours  # noqa: E402

from kubecost_worker import logs  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus  # noqa: E402
from kubecost_worker.hours import HOUR  # noqa: E402
from kubecost_worker.model import compute_hour  # noqa: E402
from kubecost_worker.pipeline import cyclic_gc_paused  # noqa: E402
from kubecost_worker.source import extract, promql, thanos  # noqa: E402
from kubecost_worker.source.policy import RUNNING, SUMMARISABLE, USAGE_SUMMARIES  # noqa: E402
from kubecost_worker.store import migrations  # noqa: E402
from kubecost_worker.store.clickhouse import ClickHouseSink  # noqa: E402
from kubecost_worker.store.ledger import RunRecord  # noqa: E402

REPLAYS = 5


class Recording(thanos.ThanosClient):
    """A client that keeps the requests it sent (path and parameters), for replaying."""

    sent: list = []
    shared: set[int] = set()  # the indexes in ``sent`` of a batch's shared requests (asked by ``fetch_hours``)

    def _get_once(self, path, params, result_type=None):
        Recording.sent.append((path, dict(params)))
        return super()._get_once(path, params, result_type)


def replayed(url: str, pid: int, sent: list) -> list[tuple[float, int, str]]:
    """(Prometheus CPU seconds, answer bytes, query) of each request, replayed ``REPLAYS`` times."""
    session, found = requests.Session(), []
    for path, params in sent:
        before = prometheus_cpu(pid)
        for _ in range(REPLAYS):
            answer = session.get(url + path, params=params, timeout=600)
        found.append(((prometheus_cpu(pid) - before) / REPLAYS, len(answer.content), params.get("query", "")))
    return found


def kind_of(query: str) -> str:
    """A short name for a query: its outermost function and metric."""
    head = query.split("{", 1)[0]
    return head[:70] if "__name__" not in query else "raw samples: " + query.split('"', 2)[1][:50]


def worker_stages(client: thanos.ThanosClient, sink: ClickHouseSink, starts: list[int]) -> dict[str, float]:
    """The worker's CPU seconds per stage for ``starts`` fetched as one batch (or alone, for one hour)."""
    stages: Counter = Counter()
    began, asked = time.process_time(), len(Recording.sent)
    fetches = extract.fetch_hours(client, "tenant_id", TENANT, starts, 60)
    stages["summaries (shared queries)"] += time.process_time() - began
    if len(starts) > 1:  # an hour alone shares nothing
        Recording.shared.update(range(asked, len(Recording.sent)))
    results = []
    for fetch in fetches:
        began = time.process_time()
        hour_input = fetch.read()
        stages["reads (samples, re-fetched pods)"] += time.process_time() - began
        began = time.process_time()
        results.append(compute_hour(hour_input))
        stages["model"] += time.process_time() - began
    runs = [RunRecord.start(TENANT, start, "bench") for start in starts]
    sink.record(*runs)
    began = time.process_time()
    sink.write_hours([(run, result, 0) for run, result in zip(runs, results)])
    stages["write (inserts, commit records)"] += time.process_time() - began
    return {stage: seconds / len(starts) for stage, seconds in stages.items()}


def reaching_the_series(url: str, pid: int, at: float) -> None:
    """What Prometheus spends finding and opening each series, against reading its hour: one instant sample of
    every CPU counter, and every sample of its last hour, the answers one number each (a query's cost grows with
    the series it selects, whatever it then computes of them); then the same with one number per series, each
    with its labels (what writing the labels adds)."""
    series = f'container_cpu_usage_seconds_total{{tenant_id="{TENANT}"}}'
    print("\nPrometheus CPU of one selection of the CPU counters, the last hour:")
    for what, query in (("the latest sample of each", f"count({series})"),
                        ("every sample of the hour", f"count(count_over_time({series}[1h]))"),
                        ("every sample of the hour, a number and the labels per series",
                         f"count_over_time({series}[1h])")):
        (cpu, _, _), = replayed(url, pid, [("/api/v1/query", {"query": query, "time": f"{at:.3f}"})])
        print(f"  {cpu:7.3f} s  {what}: {query}")


def floor(url: str, pid: int, client: thanos.ThanosClient, starts: list[int]) -> None:
    """The least Prometheus can spend on what the model needs of the summarised series, against the peer's queries
    over the same hours: each series in as many answers as it has figures (two for a running series, its first and
    last positive sample; two for a usage series, its increase or mean and its maximum; one for the others), each
    answer the cheapest figure (``count_over_time``: every sample read once, one number), and the census. Every
    figure the model needs is at least that: a series' figure comes in an answer with its labels (PromQL answers
    no value without them, and labels are what joins a series' figures), and every figure reads the hour's samples.
    Each query replayed ``REPLAYS`` times."""
    hour = client.range_selector(HOUR)
    selected = [extract._summarised_selector("tenant_id", TENANT, m) for m in SUMMARISABLE]
    twice = [extract._summarised_selector("tenant_id", TENANT, m) for m in (RUNNING, *USAGE_SUMMARIES)]
    batch_queries = extract._summary_queries(extract._Batch(client, "tenant_id", TENANT, starts, 60))
    census = batch_queries.census
    queries = [*(f"count_over_time({series}[{hour}])" for series in (*selected, *twice)), census]
    at = HOUR - 0.001
    alone = [("/api/v1/query", {"query": q, "time": f"{start + at:.3f}"}) for start in starts for q in queries]
    batched = [("/api/v1/query_range", {"query": q, "start": f"{starts[0] + at:.3f}", "end": f"{starts[-1] + at:.3f}",
                                        "step": str(HOUR)}) for q in queries]
    peer_cpu = statistics.median(peer(url, pid, starts)["prom"] for _ in range(3)) / len(starts)
    print(f"\nThe floor of Prometheus's CPU per tenant-hour (the peer's queries: {peer_cpu:.3f} s, median of 3):")
    for name, sent, target in (("hour by hour", alone, 1.0), ("batched", batched, 0.5)):
        found = replayed(url, pid, sent)
        cpu = sum(c for c, _, _ in found) / len(starts)
        census_cpu = sum(c for c, _, q in found if q == census) / len(starts)
        print(f"  {cpu:7.3f} s  {name}: {cpu / peer_cpu:.2f} x the peer's (target <= {target}); the census "
              f"{census_cpu:.3f} s, the rest {(cpu - census_cpu) / peer_cpu:.2f} x the peer's")
    # the samples of the metrics never summarised (prices, capacities, kubecost_*), asked per hour: once a batch?
    series = promql.selector("tenant_id", TENANT, matchers=batch_queries.sampled)
    hourly = [("/api/v1/query", {"query": f"{series}[{HOUR + 60}s]", "time": f"{start + at:.3f}"}) for start in starts]
    once = [("/api/v1/query", {"query": f"{series}[{len(starts) * HOUR + 60}s]", "time": f"{starts[-1] + at:.3f}"})]
    per_hour, per_batch = (sum(c for c, _, _ in replayed(url, pid, sent)) / len(starts) for sent in (hourly, once))
    print(f"  the samples of the metrics never summarised, per tenant-hour: {per_hour:.4f} s asked hour by hour, "
          f"{per_batch:.4f} s asked once for the {len(starts)} hours")


def report(name: str, hours: int, sent: list, queries: list, stages: dict[str, float]) -> None:
    total = sum(cpu for cpu, _, _ in queries)
    print(f"\n{name}: {len(queries)} requests, Prometheus CPU {total / hours:.3f} s per tenant-hour")
    # a batch's shared queries are those ``fetch_hours`` asks (none hour by hour); the rest, each hour's own
    shared = sum(cpu for k, (cpu, _, _) in enumerate(queries) if k in Recording.shared)
    if shared:
        print(f"  of which the batch's shared queries {shared / hours:.3f} s, each hour's own requests "
              f"(re-fetched pods) {(total - shared) / hours:.3f} s")
    by_kind: Counter = Counter()
    answered: Counter = Counter()
    for cpu, size, query in queries:
        by_kind[kind_of(query)] += cpu / hours
        answered[kind_of(query)] += size / hours
    for kind, cpu in by_kind.most_common(12):
        print(f"  {cpu:7.3f} s  {answered[kind] / 1e6:6.2f} MB  {kind}")
    print(f"  worker CPU per tenant-hour: {sum(stages.values()):.3f} s")
    for stage, seconds in stages.items():
        print(f"  {seconds:7.3f} s  {stage}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=6)
    args = parser.parse_args()
    logs.configure("text", "warning")
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-profile-"))
    tsdb, starts = simulated_hours(workdir, "profile", args.pods, args.hours)
    sink = ClickHouseSink.open(f"chdb://{workdir / 'ch'}")  # one embedded store per process
    migrations.migrate(sink.client)
    server = LocalPrometheus(tsdb)
    with server as url:
        client = Recording(thanos.ThanosSettings.from_config(load_config({"KCW_THANOS_URL": url})))
        extract.fetch_hours(client, "tenant_id", TENANT, starts[:1], 60)[0].read()  # warm-up, untimed
        for name, batches in (("hour by hour", [[s] for s in starts]), ("batched", [starts])):
            say(f"{name}: the worker's stages, then its queries replayed")
            Recording.sent, Recording.shared = [], set()
            stages: Counter = Counter()
            for batch in batches:
                with cyclic_gc_paused():  # as the pipeline runs a batch
                    found = worker_stages(client, sink, batch)
                for stage, seconds in found.items():
                    stages[stage] += seconds * len(batch) / len(starts)
            report(name, len(starts), Recording.sent, replayed(url, server.process.pid, Recording.sent), stages)
        reaching_the_series(url, server.process.pid, starts[-1] + 3600 - 0.001)
        floor(url, server.process.pid, client, starts)


if __name__ == "__main__":
    main()
