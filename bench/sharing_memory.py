"""Memory of a shared allocation answer against the window's length.

    .venv/bin/python bench/sharing_memory.py [--pods 500] [--days 1,7,30] [--store PATH]

One real tenant-hour of a simulated ``--pods``-pod cluster goes through the worker (Prometheus -> model -> chDB), with
the hour before it simulated too; its rows and ledger record are copied to every hour of the longest window and to 4
neighbour tenants (``bench/api.py``'s fill), every copied pod renamed with its hour: a tenant whose pod names change
every hour, so ``aggregate=pod&step=window`` has pods x hours groups.

Each request and window is measured in a fresh process of its own that reads the store as ``kubecost-worker serve``
does (``ReadClients``, ``allocation.allocation`` turned into the JSON body by ``app.json_array``, the body consumed
and dropped): its peak RSS over its RSS at rest (VmHWM, reset after a one-hour warm-up request, so libchdb's code and
caches are in the rest), then the same request again under ``tracemalloc``: the peak of Python's own allocations,
what the API process holds even beside a ClickHouse server (the chart's API runs beside one). The rest of the RSS
is the embedded engine's grouping and sorting, which a server holds instead. About 3 minutes here at the defaults
(500 pods: 683 rows of the tenant an hour, 384,000 groups in 30 days).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api import fill  # noqa: E402
from kubecost_worker import logs, wiring  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.hours import last_closed_hour  # noqa: E402

TENANT = "bench-churning-tenant"
# the chart's memory limit of the API (api.resources.limits.memory)
LIMIT_MB = 1024
REQUESTS = {
    "aggregate=pod&step=window&shareIdle=true": {"aggregate": "pod", "step": "window", "shareIdle": "true"},
    "aggregate=pod&step=window&shareIdle=true&idleByNode=true":
        {"aggregate": "pod", "step": "window", "shareIdle": "true", "idleByNode": "true"},
    "aggregate=pod&step=month&shareIdle=true": {"aggregate": "pod", "step": "month", "shareIdle": "true"},
    # beside them: the same answer without sharing
    "aggregate=pod&step=window": {"aggregate": "pod", "step": "window"},
}
# The copies' pods renamed with their copy's hour: a tenant whose pod names change every hour.
RENAMED_PODS = {"pod": "if(pod = '' OR n.number = 0, pod, concat(pod, '-h', toString(n.number)))"}


def fill_churning(sink, days: int, tenant: str) -> int:
    """Copy the processed hour (rows and ledger) to every earlier hour of ``days`` days and to the neighbour tenants,
    each copy's pods renamed with its hour; returns the tenant's row count."""
    return fill(sink, days, tenant, ("k8s_expenses", "k8s_expense_runs"), RENAMED_PODS)


def open_store(store: Path | None, pods: int, days: int) -> tuple[str, int, int, int]:
    """The chDB URL, the last stored hour, the tenant's row count and stored days: ``store`` as an earlier run left
    it, or a new one."""
    if store is None:
        from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks
        from kubecost_worker.devtools.simulation import write_simulation
        from kubecost_worker.pipeline import run_hours

        workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-sharing-memory-"))
        last = last_closed_hour()
        print(f"simulating {pods} pods for 2 h and backfilling Prometheus...", file=sys.stderr)
        sim = write_simulation(workdir / "sim", [TENANT], last - 3600, 2, nodes=max(3, pods // 50), pods=pods)
        create_blocks(Path(sim["openmetrics"]), workdir / "tsdb")
        store = workdir / "ch"
        with LocalPrometheus(workdir / "tsdb") as url:
            config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{store}"})
            sink = wiring.open_sink(config)
            wiring.apply_schema(sink, config)
            run_hours(wiring.build_pipeline(config, sink), [TENANT], [last])
        print(f"copying the hour to {days} days of 5 tenants, pods renamed every hour...", file=sys.stderr)
        rows = fill_churning(sink, days, TENANT)
    else:
        config = load_config({"KCW_THANOS_URL": "http://127.0.0.1:1", "KCW_CLICKHOUSE_URL": f"chdb://{store}"})
        sink = wiring.open_sink(config)
        wiring.apply_schema(sink, config)
        last, rows, days = sink.query("SELECT toUnixTimestamp(max(hour)), count(), intDiv(uniqExact(hour), 24) "
                                      "FROM k8s_expenses_current WHERE cloud_account_id = {t:String}", {"t": TENANT})[0]
    sink.close()
    return config.clickhouse_url, last, rows, days


def measure(url: str, params: dict, start: int, end: int) -> dict:
    """In this (fresh) process: the request's added peak RSS, then its Python peak under tracemalloc."""
    from kubecost_worker.read import allocation
    from kubecost_worker.api import app
    from kubecost_worker.store.client import ReadClients

    reader = ReadClients(url)
    request = allocation.parse_request(params)

    def body(first: int) -> tuple[int, int]:
        rows = bytes_ = 0
        for piece in app.json_array(allocation.allocation(reader, request, TENANT, first, end)):
            rows, bytes_ = rows + 1, bytes_ + len(piece)
        return rows - 1, bytes_

    body(end - 3600)  # the engine opened, its caches warm
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM back to the RSS now
    at_rest = _self_mb("VmRSS")
    began = time.perf_counter()
    rows, size = body(start)
    seconds = time.perf_counter() - began
    peak = _self_mb("VmHWM")
    gc.collect()
    tracemalloc.start()
    body(start)
    python_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    reader.close()
    return {"rows": rows, "bytes": size, "seconds": seconds, "at_rest_mb": at_rest, "added_mb": peak - at_rest,
            "python_peak_mb": python_peak}


def _self_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--days", default="1,7,30", help="the windows measured, in days (the store holds the largest)")
    parser.add_argument("--only", help="measure only the requests whose name contains this")
    parser.add_argument("--store", type=Path, help="a chDB path an earlier run filled (printed at its end)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a child's JSON arguments
    args = parser.parse_args()
    logs.configure("text", "warning")
    if args.measure:
        given = json.loads(args.measure)
        print(json.dumps(measure(given["url"], given["params"], given["start"], given["end"])))
        return

    windows = [int(d) for d in args.days.split(",")]
    url, last, rows, stored_days = open_store(args.store, args.pods, max(windows))
    end = last + 3600
    results = []
    for name, params in REQUESTS.items():
        if args.only and args.only not in name:
            continue
        for days in windows:
            child = subprocess.run(
                [sys.executable, __file__, "--measure",
                 json.dumps({"url": url, "params": params, "start": end - days * 86400, "end": end})],
                capture_output=True, text=True, check=False)
            if child.returncode != 0:
                raise RuntimeError(child.stderr[-3000:])
            result = json.loads(child.stdout.strip().splitlines()[-1])
            results.append((name, days, result))
            print(f"{name} {days} d: {result}", file=sys.stderr)

    print(f"\n{args.pods} pods a tenant-hour, pod names changing every hour, {stored_days} days stored "
          f"({rows:,} rows of the tenant, 4 neighbours alike); each request in a fresh process\n")
    print(f"{'request':<60} {'days':>4} {'rows':>10} {'body MB':>8} {'s':>6} {'+RSS MB':>8} {'Python MB':>9}  "
          f"target")
    for name, days, r in results:
        print(f"{name:<60} {days:>4} {r['rows']:>10,} {r['bytes'] / 2**20:>8.1f} {r['seconds']:>6.1f} "
              f"{r['added_mb']:>8.0f} {r['python_peak_mb']:>9.1f}  "
              f"+RSS < {LIMIT_MB} MB: {'yes' if r['added_mb'] < LIMIT_MB else 'NO'}")
    for name in dict.fromkeys(name for name, _, _ in results):
        peaks = [r["python_peak_mb"] for n, _, r in results if n == name]
        ratio = peaks[-1] / peaks[0]
        print(f"{name}: Python peak, longest window / shortest: {ratio:.2f} (target: flat, <= 1.5: "
              f"{'yes' if ratio <= 1.5 else 'NO'})")
    print(f"\nthe store: {url.removeprefix('chdb://')} (--store to measure it again)")


if __name__ == "__main__":
    main()
