"""Allocation API latency: sharing, multi-aggregation with a filter, and rightsizing over 30 days of a 2,000-pod tenant;
with ``--daily-tier``, a month of the tenant read from the daily tier beside a year of other tenants' (issue 29).

    .venv/bin/python bench/allocation.py [--pods 2000] [--days 30] [--requests 30]
    .venv/bin/python bench/allocation.py --daily-tier [--pods 2000] [--days 30] [--neighbour-days 365]

One real tenant-hour of a simulated 2,000-pod cluster goes through the worker (Prometheus -> model -> chDB), with
the hour before it simulated too (a CPU counter's increase starts at its last sample before the hour); its rows
and ledger record are copied to every hour of the window and to 4 neighbour tenants (``bench/api.py``'s fill).
``kubecost-worker serve`` runs in a process of its own, as deployed, and is called over loopback HTTP: p50 and
p95 of ``--requests`` calls per request, and the answer's size.

``--daily-tier``: a day of the 2,000-pod tenant as ``bench/storage.py`` generates it (rows, not Prometheus) is
written hour by hour, built into the daily tier and its hours expired (sealed first, as the scheduler does); its
daily rows are copied to the ``--days`` days before it and to ``--neighbour-days`` days of 4 neighbour tenants, each
copy a day of its own (``storage.fill_days``: renamed pods, new uids, figures scaled), built and sealed. Every day of
the window is then read from the daily tier.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api import SECRET, api_process, fill, percentile  # noqa: E402
from kubecost_worker import logs, wiring  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks  # noqa: E402
from kubecost_worker.devtools.simulation import write_simulation  # noqa: E402
from kubecost_worker.hours import last_closed_hour  # noqa: E402
from kubecost_worker.pipeline import run_hours  # noqa: E402
from kubecost_worker.store.ledger import RunRecord  # noqa: E402
from kubecost_worker.store import cleanup, days as day_builds  # noqa: E402

TENANT = "bench-big-tenant"
TARGET_MS = 50
REQUESTS = {
    "k8s_expenses?aggregate=namespace&shareIdle=true&step=day":
        ("k8s_expenses", {"aggregate": "namespace", "shareIdle": "true", "step": "day"}),
    'k8s_expenses?aggregate=controller,label:team&filter=namespace:"data"':
        ("k8s_expenses", {"aggregate": "controller,label:team", "filter": 'namespace:"data"'}),
    "k8s_rightsizing": ("k8s_rightsizing", {}),
    # beside the targets: what the other parameters cost
    "k8s_expenses?aggregate=namespace&shareIdle=true&idleByNode=true&step=day":
        ("k8s_expenses", {"aggregate": "namespace", "shareIdle": "true", "idleByNode": "true", "step": "day"}),
    "k8s_expenses?aggregate=namespace,controller&shareNamespaces=kube-system&shareTenancyCosts=true&step=week":
        ("k8s_expenses", {"aggregate": "namespace,controller", "shareNamespaces": "kube-system",
                          "shareTenancyCosts": "true", "step": "week"}),
    "k8s_rightsizing?algorithm=quantile&q=0.95": ("k8s_rightsizing", {"algorithm": "quantile", "q": "0.95"}),
    "k8s_expenses?aggregate=namespace&step=day&format=csv":
        ("k8s_expenses", {"aggregate": "namespace", "step": "day", "format": "csv"}),
}


DAILY_TARGET = "k8s_expenses?aggregate=namespace&step=day"
DAILY_REQUESTS = {
    DAILY_TARGET: ("k8s_expenses", {"aggregate": "namespace", "step": "day"}),
    # beside the target: what the other parameters cost over the daily tier
    "k8s_expenses?aggregate=namespace&shareIdle=true&step=day":
        ("k8s_expenses", {"aggregate": "namespace", "shareIdle": "true", "step": "day"}),
    'k8s_expenses?aggregate=controller,label:team&filter=namespace:"data"&step=week':
        ("k8s_expenses", {"aggregate": "controller,label:team", "filter": 'namespace:"data"', "step": "week"}),
    "k8s_expenses?aggregate=namespace,pod&step=day": ("k8s_expenses", {"aggregate": "namespace,pod", "step": "day"}),
    "k8s_expenses?aggregate=cluster&step=month": ("k8s_expenses", {"aggregate": "cluster", "step": "month"}),
}


def open_daily_store(pods: int, days: int, neighbour_days: int):
    """The daily tier's store (``--daily-tier``); its config, the window's end, the tenant's daily rows and everyone's
    (the tenant is ``storage.TENANT``, whose rows ``storage`` generates)."""
    import storage

    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-daily-"))
    config = load_config({"KCW_THANOS_URL": "http://127.0.0.1:1", "KCW_CLICKHOUSE_URL": f"chdb://{workdir / 'ch'}"})
    sink = wiring.open_sink(config)
    wiring.apply_schema(sink, config)
    rng = random.Random(1)
    nodes = [f"gke-bench-pool-{i:03d}" for i in range(max(3, pods // 50))]
    planned = storage.plan(rng, pods, 24, nodes)
    day = 1_767_225_600
    print(f"writing a day of {pods} pods hour by hour, building and sealing it...", file=sys.stderr)
    for k in range(24):
        run = RunRecord.start(storage.TENANT, day + k * 3600, "bench")
        sink.record(run)
        sink.write_hour(run, storage.hour_rows(planned, nodes, k, day + k * 3600))
    cleanup.expire_hours(sink.client, None, day + 86400)
    print(f"copying it to {days} days of the tenant and {neighbour_days} days of 4 neighbours...", file=sys.stderr)
    storage.fill_days(sink, storage.TENANT, day, days)
    for i in range(1, 5):
        storage.fill_days(sink, storage.TENANT, day, neighbour_days, (f"neighbour-{i}",))
    sink.client.command(f"OPTIMIZE TABLE {day_builds.EXPENSES_BY_DAY} FINAL")
    (rows,), = sink.query(f"SELECT count() FROM {day_builds.EXPENSES_BY_DAY} WHERE cloud_account_id = {{t:String}}",
                          {"t": storage.TENANT})
    (everyone,), = sink.query(f"SELECT count() FROM {day_builds.EXPENSES_BY_DAY}")
    sink.close()
    return config, day + 86400, rows, everyone


def open_store(store: Path | None, pods: int, days: int):
    """The bench's store: ``store`` as an earlier run left it, or a new one (one real tenant-hour of ``pods`` pods
    copied to ``days`` days of the tenant and 4 neighbours); its config, last hour and the tenant's row count. The
    store is closed again: the caller opens it (or a process of its own does)."""
    if store:
        config = load_config({"KCW_THANOS_URL": "http://127.0.0.1:1", "KCW_CLICKHOUSE_URL": f"chdb://{store}"})
        sink = wiring.open_sink(config)
        wiring.apply_schema(sink, config)
        last, rows = sink.query("SELECT toUnixTimestamp(max(hour)), count() FROM k8s_expenses_current "
                                "WHERE cloud_account_id = {t:String}", {"t": TENANT})[0]
    else:
        workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-allocation-"))
        last = last_closed_hour()
        print(f"simulating {pods} pods for 2 h and backfilling Prometheus...", file=sys.stderr)
        sim = write_simulation(workdir / "sim", [TENANT], last - 3600, 2, nodes=max(3, pods // 50), pods=pods)
        create_blocks(Path(sim["openmetrics"]), workdir / "tsdb")
        with LocalPrometheus(workdir / "tsdb") as url:
            config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{workdir / 'ch'}"})
            sink = wiring.open_sink(config)
            wiring.apply_schema(sink, config)
            run_hours(wiring.build_pipeline(config, sink), [TENANT], [last])
        print(f"copying the hour to {days} days of 5 tenants...", file=sys.stderr)
        rows = fill(sink, days, TENANT, ("k8s_expenses", "k8s_expense_runs"))
    sink.close()
    return config, last, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--store", type=Path, help="a chDB path an earlier run filled (printed at its end): "
                                                   "measure again without simulating")
    parser.add_argument("--daily-tier", action="store_true", help="read a month from the daily tier (issue 29)")
    parser.add_argument("--neighbour-days", type=int, default=365, help="with --daily-tier: days of each neighbour")
    args = parser.parse_args()
    logs.configure("text", "warning")
    if args.daily_tier:
        config, end, rows, everyone = open_daily_store(args.pods, args.days, args.neighbour_days)
        from storage import TENANT as GENERATED

        measure(config, {"cloud_account_id": GENERATED, "start_date": end - args.days * 86400, "end_date": end},
                DAILY_REQUESTS, args.requests, [DAILY_TARGET])
        print(f"\n{args.pods} pods, {args.days} days of the tenant sealed ({rows:,} daily rows) beside "
              f"{args.neighbour_days} days of 4 neighbours ({everyone:,} daily rows in all); "
              f"{args.requests} requests each over the tenant's {args.days} days")
        return
    config, last, rows = open_store(args.store, args.pods, args.days)
    window = {"cloud_account_id": TENANT, "start_date": last + 3600 - args.days * 86400, "end_date": last + 3600}
    measure(config, window, REQUESTS, args.requests, list(REQUESTS)[:3])
    print(f"\n{args.pods} pods, {args.days} days stored ({rows:,} rows of the tenant, 4 neighbours alike); "
          f"{args.requests} requests each over the whole window")
    print(f"the store: {config.clickhouse_url.removeprefix('chdb://')} (--store to measure it again)")


def measure(config, window: dict, requests_made: dict, count: int, targeted: list[str]) -> None:
    """p50 and p95 of ``count`` calls of each request over ``window``, printed beside the target where it has one."""
    session = requests.Session()
    session.headers.update({"Secret": SECRET})
    results = []
    with api_process(config.clickhouse_url) as (base, _):
        for name, (endpoint, params) in requests_made.items():
            latencies, size = [], 0
            for _ in range(count):
                started = time.perf_counter()
                response = session.get(f"{base}/metroculus/v2/{endpoint}", params={**window, **params})
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text[:300]
                size = len(response.content)
            results.append((name, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.95) * 1000, size))
    print(f"\n{'request':<108} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>10}  target")
    for name, p50, p95, size in results:
        target = (f"p50 <= {TARGET_MS} ms: {'yes' if p50 <= TARGET_MS else 'NO'}") if name in targeted else ""
        print(f"{name:<108} {p50:>8.1f} {p95:>8.1f} {size:>10,}  {target}")


if __name__ == "__main__":
    main()
