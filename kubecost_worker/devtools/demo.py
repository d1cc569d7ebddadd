"""The README's first command: the whole service on a laptop, against a simulated cluster.

simulate -> promtool -> local Prometheus (standing in for Thanos Query) -> worker -> embedded ClickHouse
(chDB) -> a cost table per tenant and namespace, checked against the simulator's ground truth.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

from .. import wiring
from ..config import load_config
from ..output import format_rows
from ..pipeline import run_hours
from ..hours import HOUR, hour_starts, last_closed_hour
from .accuracy import Accuracy, compare_with_ground_truth, stored_rows
from .localprom import LocalPrometheus, create_blocks
from .simulation import write_simulation

def run_demo(workdir: str | Path, tenant_count: int = 2, hours: int = 24, pods: int = 20, nodes: int = 3,
             echo: Callable[[str], None] = print) -> Accuracy:
    began = time.perf_counter()
    workdir = Path(workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    end = last_closed_hour() + HOUR
    start = end - hours * HOUR
    tenants = [f"demo-tenant-{i + 1:04d}" for i in range(tenant_count)]
    echo(f"1/5 simulating {tenant_count} tenants x {nodes} nodes x ~{pods} pods for the last {hours} hours")
    written = write_simulation(workdir / "simulation", tenants, start, hours, nodes=nodes, pods=pods)
    echo(f"2/5 backfilling a local Prometheus with {written['samples']:,} samples (promtool)")
    create_blocks(Path(written["openmetrics"]), workdir / "tsdb")
    with LocalPrometheus(workdir / "tsdb") as url:
        config = load_config({"KCW_THANOS_URL": url, "KCW_DATA_DIR": str(workdir / "data")})
        pipeline = wiring.build_pipeline(config)
        sink = pipeline.sink
        wiring.apply_schema(sink, config)
        found = pipeline.tenants()
        echo(f"3/5 Prometheus on {url}; tenants discovered: {', '.join(found)}")
        echo(f"4/5 running the worker over {hours} hours into embedded ClickHouse at {config.clickhouse_url}")
        summary = run_hours(pipeline, found, hour_starts(start, end), progress=False)
    echo("    " + summary.line())
    truth = [json.loads(line) for line in Path(written["ground_truth"]).read_text().splitlines() if line]
    accuracy = compare_with_ground_truth(stored_rows(sink), truth)
    echo("5/5 cost by namespace over the whole window (from k8s_expenses_current):\n")
    names, rows = sink.query_with_names(
        "SELECT cloud_account_id AS tenant, namespace, round(sum(cpu_cost), 4) AS cpu, round(sum(ram_cost), 4) AS ram,"
        " round(sum(pv_cost + gpu_cost + network_cost + lb_cost + management_cost), 4) AS other,"
        " round(sum(total_cost), 4) AS total FROM k8s_expenses_current"
        " GROUP BY tenant, namespace ORDER BY tenant, total DESC")
    echo(format_rows(names, rows))
    sink.close()
    # every number of every row is compared (costs, quantities in bytes and cores, usage): the relative error is
    # the figure that means the same for all of them
    echo(f"\nground truth: {accuracy.compared} rows compared, every column, {len(accuracy.missing)} missing, "
         f"{len(accuracy.unexpected)} unexpected, {len(accuracy.mismatches)} mismatched, "
         f"max relative error {accuracy.max_rel_error:.2e}")
    echo(f"demo took {time.perf_counter() - began:.1f} s. Explore further with SQL, for example:\n")
    echo(f"  .venv/bin/kubecost-worker --data-dir {workdir / 'data'} sql \\\n"
         "    \"SELECT namespace, workload_kind, workload_name, round(sum(total_cost), 4) AS cost\n"
         "     FROM k8s_expenses_current GROUP BY ALL ORDER BY cost DESC LIMIT 10\"\n")
    echo(f"  .venv/bin/kubecost-worker --data-dir {workdir / 'data'} sql \\\n"
         "    \"SELECT labels['team'] AS team, round(sum(total_cost), 4) AS cost FROM k8s_expenses_current\n"
         "     WHERE hour >= now() - INTERVAL 1 DAY GROUP BY team ORDER BY cost DESC\"")
    return accuracy
