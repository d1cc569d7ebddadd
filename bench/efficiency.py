"""Efficiency per namespace as stored, next to the simulator's ground truth (docs/model.md, "Efficiency").

    .venv/bin/python bench/efficiency.py [--pods 200] [--hours 2]

Simulates one tenant, backfills a local Prometheus with it (Debian's promtool), runs the worker's pipeline over
every hour into an embedded ClickHouse, and prints per namespace the CPU, RAM and total efficiency read from
``k8s_expenses_efficiency_current`` (one row per namespace and hour) beside the same figures computed from the
ground truth's rows with the documented formulas: the first hour as a table, the largest difference over every
namespace-hour. About a minute.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubecost_worker import logs, wiring  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.hours import last_closed_hour  # noqa: E402
from kubecost_worker.pipeline import run_hours  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks  # noqa: E402
from kubecost_worker.devtools.simulation import simulate  # noqa: E402

TENANT = "efficiency-tenant"


def efficiency(rows: list[dict]) -> tuple[float | None, float | None, float | None]:
    """docs/model.md "Efficiency" over plain rows: (cpu, ram, total)."""
    def of(usage: str, request: str, cost: str) -> tuple[float | None, float]:
        known = [r for r in rows if r[usage] is not None]
        if not known:
            return None, 0.0
        used, requested = math.fsum(r[usage] for r in known), math.fsum(r[request] for r in known)
        spent = math.fsum(r[cost] for r in known)
        if requested > 0:
            return used / requested, spent
        return (1.0 if used > 0 and spent > 0 else 0.0), spent

    cpu, cpu_cost = of("cpu_usage_core_hours", "cpu_request_core_hours", "cpu_cost")
    ram, ram_cost = of("ram_usage_byte_hours", "ram_request_byte_hours", "ram_cost")
    if math.fsum(r["cpu_cost"] + r["ram_cost"] for r in rows) == 0:
        return cpu, ram, 0.0
    weighed = [(e, c) for e, c in ((cpu, cpu_cost), (ram, ram_cost)) if e is not None]
    if not weighed:
        return cpu, ram, None
    spent = math.fsum(c for _, c in weighed)
    return cpu, ram, (math.fsum(e * c for e, c in weighed) / spent if spent > 0 else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--hours", type=int, default=2)
    args = parser.parse_args()
    logs.configure("text", "warning")
    workdir = Path(tempfile.mkdtemp(prefix="kcw-efficiency-"))
    first = last_closed_hour() - args.hours * 3600
    sim = simulate([TENANT], first, args.hours, nodes=max(3, args.pods // 50), pods=args.pods)
    sim.write_openmetrics(workdir / "metrics.om")
    create_blocks(workdir / "metrics.om", workdir / "tsdb")
    with LocalPrometheus(workdir / "tsdb") as url:
        config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{workdir / 'ch'}"})
        pipeline = wiring.build_pipeline(config)
        wiring.apply_schema(pipeline.sink, config)
        run_hours(pipeline, [TENANT], [first + i * 3600 for i in range(args.hours)])
        stored = _stored(pipeline.sink)
        pipeline.sink.close()
    by_namespace_hour: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in sim.ground_truth():
        by_namespace_hour[(row["namespace"], row["hour"])].append(row)
    show = lambda v: "NULL" if v is None else f"{v:.6f}"
    print(f"hour {first} (UTC {time.strftime('%Y-%m-%d %H:%M', time.gmtime(first))}):")
    print(f"{'namespace':<24} {'cpu stored':>12} {'cpu truth':>12} {'ram stored':>12} {'ram truth':>12} "
          f"{'total stored':>13} {'total truth':>12}")
    worst = 0.0
    for namespace, hour in sorted(by_namespace_hour, key=lambda key: (key[1], key[0])):
        truth = efficiency(by_namespace_hour[(namespace, hour)])
        got = stored.get((namespace, hour), (None, None, None))
        for a, b in zip(got, truth):
            if (a is None) != (b is None):
                worst = math.inf
            elif a is not None:
                worst = max(worst, abs(a - b) / max(abs(b), 1e-300))
        if hour == first:
            print(f"{namespace:<24} {show(got[0]):>12} {show(truth[0]):>12} {show(got[1]):>12} {show(truth[1]):>12} "
                  f"{show(got[2]):>13} {show(truth[2]):>12}")
    print(f"largest relative difference over {len(by_namespace_hour)} namespace-hours: {worst:.2e}")


def _stored(sink) -> dict[str, tuple]:
    rows = sink.query("SELECT namespace, toUnixTimestamp(hour), cpu_efficiency, ram_efficiency, total_efficiency "
                      "FROM k8s_expenses_efficiency_current WHERE cloud_account_id = {t:String}", {"t": TENANT})
    return {(ns, int(hour)): (cpu, ram, total) for ns, hour, cpu, ram, total in rows}


if __name__ == "__main__":
    main()
