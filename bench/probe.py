"""Memory probes, each run in a fresh process by ``bench/run.py`` so that its peak is its own; prints JSON.

    python bench/probe.py tenant-hour THANOS_URL TENANT HOUR
        one tenant-hour into embedded ClickHouse: the process's peak RSS, the same at rest before the hour
        (interpreter, libraries, the embedded engine), and the peak of anonymous memory
    python bench/probe.py model-only THANOS_URL TENANT HOUR
        fetch and model of one tenant-hour in a process that never loads the embedded engine: what a worker
        writing to a ClickHouse server holds, but for the insert
    python bench/probe.py batched-model-only THANOS_URL TENANT FIRST_HOUR HOURS
        fetch and model of HOURS consecutive hours in batches as a backfill makes them (the first hour alone, then
        batches sized by KCW_BATCH_HOURS and KCW_BATCH_SERIES_HOURS), without the embedded engine
    python bench/probe.py batched THANOS_URL TENANT FIRST_HOUR HOURS
        the same backfill into embedded ClickHouse (the pipeline's run_hours): peak RSS and peak anonymous memory
    python bench/probe.py backfill THANOS_URL TENANT FIRST_HOUR HOURS PASSES
        a backfill of HOURS hours in one process, then PASSES - 1 reruns of them: RSS after the first hour, after
        the HOURS-th and after the last (the reruns show whether memory still grows once warm)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class AnonPeak:
    """Samples RssAnon every 2 ms: the kernel keeps a peak of the total RSS only."""

    def __init__(self):
        self.peak_kb = status_kb("RssAnon")
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self.peak_kb = max(self.peak_kb, status_kb("RssAnon"))
            time.sleep(0.002)


def peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: that one survives execve, so a child would report its parent's peak
    return status_kb("VmHWM") / 1024


def batch_settings() -> dict[str, str]:
    """``KCW_BATCH_*`` from the environment, as a worker takes them: the probe's other settings are its own."""
    return {k: v for k, v in os.environ.items() if k.startswith("KCW_BATCH")}


def pipeline(url: str):
    from kubecost_worker import wiring
    from kubecost_worker.config import load_config

    ch = f"chdb://{tempfile.mkdtemp(prefix='kcw-probe-')}"
    config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": ch, **batch_settings()})
    pipeline = wiring.build_pipeline(config)
    wiring.apply_schema(pipeline.sink, config)
    return pipeline


def main() -> None:
    from kubecost_worker import logs

    logs.configure("text", "warning")
    kind, url, tenant = sys.argv[1:4]
    if kind == "tenant-hour":
        work = pipeline(url)
        anon = AnonPeak()
        at_rest = peak_rss_mb()
        anon_at_rest = status_kb("RssAnon") / 1024
        work.run_hour(tenant, int(sys.argv[4]))
        print(json.dumps({"peak_rss_mb": peak_rss_mb(), "at_rest_mb": at_rest, "anon_peak_mb": anon.peak_kb / 1024,
                          "anon_at_rest_mb": anon_at_rest}))
    elif kind == "model-only":
        from kubecost_worker.model import compute_hour
        from kubecost_worker.pipeline import cyclic_gc_paused
        from kubecost_worker.source.extract import fetch_hour
        from kubecost_worker.source.thanos import ThanosClient, ThanosSettings

        hour = int(sys.argv[4])
        at_rest = peak_rss_mb()
        with cyclic_gc_paused():
            result = compute_hour(fetch_hour(ThanosClient(ThanosSettings(url)), "tenant_id", tenant, hour,
                                             hour + 3600, 60))
        assert "chdb" not in sys.modules
        print(json.dumps({"peak_rss_mb": peak_rss_mb(), "at_rest_mb": at_rest, "rows": len(result.rows)}))
    elif kind == "batched-model-only":
        from kubecost_worker.config import load_config
        from kubecost_worker.model import compute_hour
        from kubecost_worker.pipeline import batch_size, cyclic_gc_paused, next_batch
        from kubecost_worker.source.extract import fetch_hours
        from kubecost_worker.source.thanos import ThanosClient, ThanosSettings

        first, hours = int(sys.argv[4]), int(sys.argv[5])
        config = load_config({"KCW_THANOS_URL": url, **batch_settings()})
        client = ThanosClient(ThanosSettings(url))
        at_rest = peak_rss_mb()
        pending, series, batches, rows = list(range(first, first + hours * 3600, 3600)), None, [], 0
        while pending:
            batch = next_batch(pending, batch_size(config, series))
            pending = pending[len(batch):]
            batches.append(len(batch))
            with cyclic_gc_paused():  # for the batch, as the pipeline pauses it
                for hour in fetch_hours(client.counting(), "tenant_id", tenant, batch, 60):
                    hour_input = hour.read()
                    series = sum(len(g) for g in hour_input.series.values())
                    rows += len(compute_hour(hour_input).rows)
                    del hour_input
        assert "chdb" not in sys.modules
        print(json.dumps({"peak_rss_mb": peak_rss_mb(), "at_rest_mb": at_rest, "rows": rows, "batches": batches,
                          "series": series}))
    elif kind == "batched":
        from kubecost_worker.pipeline import run_hours

        first, hours = int(sys.argv[4]), int(sys.argv[5])
        work = pipeline(url)
        anon = AnonPeak()
        at_rest = peak_rss_mb()
        done = run_hours(work, [tenant], list(range(first, first + hours * 3600, 3600)))
        print(json.dumps({"peak_rss_mb": peak_rss_mb(), "at_rest_mb": at_rest, "anon_peak_mb": anon.peak_kb / 1024,
                          "done": done.done, "failed": done.failed}))
    elif kind == "backfill":
        first, hours, passes = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        work = pipeline(url)
        rss = []
        for hour in list(range(first, first + hours * 3600, 3600)) * passes:
            work.run_hour(tenant, hour)
            rss.append(status_kb("VmRSS") / 1024)
        print(json.dumps({"rss_after_first_mb": rss[0], "rss_after_hours_mb": rss[hours - 1],
                          "rss_after_last_mb": rss[-1], "peak_rss_mb": peak_rss_mb(), "hours": hours,
                          "tenant_hours": len(rss)}))
    else:
        raise SystemExit(f"unknown probe {kind!r}")


if __name__ == "__main__":
    main()
