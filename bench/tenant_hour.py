"""One tenant-hour end to end next to the floor, and the peak memory of the process doing it.

    .venv/bin/python bench/tenant_hour.py [--pods 2000,10000] [--runs 5]

For each size: simulate one tenant for one hour, backfill a local Prometheus, then
- worker: `Pipeline.run_hour` (fetch, compute, write, commit into chDB), median of `--runs` runs;
- floor: one plain `query_range` over the same hour at the same step of every raw series the hour needs
  (`{__name__=~"<the metrics>", tenant_id="..."}`), the body read and discarded, median of `--runs`;
- peak RSS of a fresh process that runs the tenant-hour once (`ru_maxrss`).
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

from kubecost_worker import logs  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.localprom import LocalPrometheus, backfill  # noqa: E402
from kubecost_worker.model.series import KEPT_PREFIX, NEEDED_METRICS  # noqa: E402
from kubecost_worker.pipeline import Pipeline  # noqa: E402
from kubecost_worker.simulate import write_simulation  # noqa: E402
from kubecost_worker.sink import migrations  # noqa: E402
from kubecost_worker.sink.clickhouse import ClickHouseSink  # noqa: E402
from kubecost_worker.source.promql import names_matcher  # noqa: E402
from kubecost_worker.source.thanos import ThanosClient, ThanosSettings  # noqa: E402

TENANT = "bench-tenant"
ONE_RUN = """
import json, resource, sys
from kubecost_worker import logs
from kubecost_worker.config import load_config
from kubecost_worker.pipeline import Pipeline
from kubecost_worker.sink import migrations
from kubecost_worker.sink.clickhouse import ClickHouseSink
from kubecost_worker.source.thanos import ThanosClient, ThanosSettings
logs.configure("text", "warning")
url, ch, hour = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": ch})
sink = ClickHouseSink.open(ch)
migrations.migrate(sink.client)
done = Pipeline(config, ThanosClient(ThanosSettings.from_config(config)), sink).run_hour("%s", hour)
print(json.dumps({"rows": done.rows_written, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""" % TENANT


def measure(pods: int, runs: int, workdir: Path) -> dict:
    hour = int(time.time()) // 3600 * 3600 - 3600
    sim = write_simulation(workdir / f"sim-{pods}", [TENANT], hour, 1, nodes=max(3, pods // 50), pods=pods)
    backfill(Path(sim["openmetrics"]), workdir / f"tsdb-{pods}")
    with LocalPrometheus(workdir / f"tsdb-{pods}") as url:
        rss = json.loads(subprocess.run([sys.executable, "-c", ONE_RUN, url, f"chdb://{workdir / f'rss-{pods}'}",
                                         str(hour)], check=True, capture_output=True, text=True).stdout)
        config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{workdir / f'ch-{pods}'}"})
        sink = ClickHouseSink.open(config.clickhouse_url)
        migrations.migrate(sink.client)
        pipeline = Pipeline(config, ThanosClient(ThanosSettings.from_config(config)), sink)
        worker = []
        for _ in range(runs):
            started = time.perf_counter()
            pipeline.run_hour(TENANT, hour)
            worker.append(time.perf_counter() - started)
        sink.close()
        selector = "{" + names_matcher(NEEDED_METRICS, [KEPT_PREFIX]) + f', tenant_id="{TENANT}"' + "}"
        floor, size = [], 0
        for _ in range(runs):
            started = time.perf_counter()
            response = requests.get(f"{url}/api/v1/query_range", timeout=600,
                                    params={"query": selector, "start": hour, "end": hour + 3600 - 60, "step": 60})
            size = len(response.content)
            floor.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:200]
    return {"pods": pods, "series": sim["series"], "samples": sim["samples"], "rows": rss["rows"],
            "worker_s": statistics.median(worker), "floor_s": statistics.median(floor), "floor_mb": size / 1e6,
            "peak_rss_mb": rss["peak_rss_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", default="2000,10000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logs.configure("text", "warning")
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-hour-"))
    print(f"{'pods':>6} {'series':>8} {'samples':>10} {'rows':>6} {'worker s':>9} {'floor s':>8} {'ratio':>6} "
          f"{'floor MB':>9} {'peak RSS MB':>12}")
    for pods in (int(p) for p in args.pods.split(",")):
        r = measure(pods, args.runs, workdir)
        print(f"{r['pods']:>6} {r['series']:>8} {r['samples']:>10} {r['rows']:>6} {r['worker_s']:>9.2f} "
              f"{r['floor_s']:>8.2f} {r['worker_s'] / r['floor_s']:>6.2f} {r['floor_mb']:>9.1f} {r['peak_rss_mb']:>12.0f}",
              flush=True)


if __name__ == "__main__":
    main()
