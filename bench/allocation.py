"""Allocation API latency: sharing, multi-aggregation with a filter, and rightsizing over 30 days of a 2,000-pod tenant.

    .venv/bin/python bench/allocation.py [--pods 2000] [--days 30] [--requests 30]

One real tenant-hour of a simulated 2,000-pod cluster goes through the worker (Prometheus -> model -> chDB), with
the hour before it simulated too (a CPU counter's increase starts at its last sample before the hour); its rows
and ledger record are copied to every hour of the window and to 4 neighbour tenants (``bench/api.py``'s fill).
``kubecost-worker serve`` runs in a process of its own, as deployed, and is called over loopback HTTP: p50 and
p95 of ``--requests`` calls per request, and the answer's size.
"""

from __future__ import annotations

import argparse
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
from kubecost_worker.pipeline import run_hours  # noqa: E402

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
        last = int(time.time()) // 3600 * 3600 - 3600
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
    args = parser.parse_args()
    logs.configure("text", "warning")
    config, last, rows = open_store(args.store, args.pods, args.days)

    window = {"cloud_account_id": TENANT, "start_date": last + 3600 - args.days * 86400, "end_date": last + 3600}
    session = requests.Session()
    session.headers.update({"Secret": SECRET})
    results = []
    with api_process(config.clickhouse_url) as (base, _):
        for name, (endpoint, params) in REQUESTS.items():
            latencies, size = [], 0
            for _ in range(args.requests):
                started = time.perf_counter()
                response = session.get(f"{base}/metroculus/v2/{endpoint}", params={**window, **params})
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text[:300]
                size = len(response.content)
            results.append((name, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.95) * 1000, size))

    print(f"\n{args.pods} pods, {args.days} days stored ({rows:,} rows of the tenant, 4 neighbours alike); "
          f"{args.requests} requests each over the whole window\n")
    print(f"{'request':<108} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>10}  target")
    for index, (name, p50, p95, size) in enumerate(results):
        target = (f"p50 <= {TARGET_MS} ms: {'yes' if p50 <= TARGET_MS else 'NO'}") if index < 3 else ""
        print(f"{name:<108} {p50:>8.1f} {p95:>8.1f} {size:>10,}  {target}")
    print(f"\nthe store: {config.clickhouse_url.removeprefix('chdb://')} (--store to measure it again)")


if __name__ == "__main__":
    main()
