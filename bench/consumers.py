"""Consumer throughput: tenant-hours per minute with 1 and 2 `kubecost-worker consume` processes on RabbitMQ.

    .venv/bin/python bench/consumers.py [--tenants 2] [--hours 24] [--pods 20] [--consumers 1,2]

Simulates each tenant's cluster, serves them from a local Prometheus (once it has compacted their blocks),
publishes a range job per tenant with `kubecost-worker rerun` (the consumers split them into batches of
KCW_BATCH_HOURS hours), starts N consumers (each on its own chDB path: embedded ClickHouse allows one process per
path) and times from their start until every job is done (counted from their JSON log lines).
Needs RabbitMQ on 127.0.0.1:5672 (guest/guest).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks  # noqa: E402
from kubecost_worker.devtools.simulation import write_simulation  # noqa: E402
from kubecost_worker.hours import last_closed_hour  # noqa: E402

WORKER = Path(sys.executable).parent / "kubecost-worker"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"


def worker_env(**settings: str) -> dict[str, str]:
    """The environment of a worker process: this one's without any ``KCW_*`` setting, plus ``settings``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("KCW_")}, **settings}


def consumer_env(thanos_url: str) -> dict[str, str]:
    """Consumers (and the rerun that feeds them) on RabbitMQ, under queue names of their own."""
    return worker_env(KCW_THANOS_URL=thanos_url, KCW_BROKER_URL=AMQP, KCW_QUEUE_PREFIX=f"bench{uuid.uuid4().hex[:8]}",
                      KCW_LOG_FORMAT="json", KCW_PREFETCH="1", KCW_METRICS_PORT="0")


@contextlib.contextmanager
def consumers_running(env: dict[str, str], paths: list[Path], watch) -> Iterator[list]:
    """A ``kubecost-worker consume`` process on each chDB path (migrated first), their stderr
    read by ``watch`` in a thread each; stopped with SIGTERM, and waited for, on exit."""
    processes = []
    try:
        for path in paths:
            process_env = {**env, "KCW_CLICKHOUSE_URL": f"chdb://{path}"}
            subprocess.run([str(WORKER), "migrate"], env=process_env, check=True, capture_output=True)
            process = subprocess.Popen([str(WORKER), "consume"], env=process_env, stderr=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, text=True)
            threading.Thread(target=watch, args=(process.stderr,), daemon=True).start()
            processes.append(process)
        yield processes
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=120)


def run_consumers(count: int, env: dict[str, str], workdir: Path, jobs: int) -> float:
    done = 0
    lock = threading.Lock()
    all_done = threading.Event()

    def watch(stream) -> None:
        nonlocal done
        for line in stream:
            if '"tenant-hour done"' in line:
                with lock:
                    done += 1
                    if done >= jobs:
                        all_done.set()

    started = time.perf_counter()
    with consumers_running(env, [workdir / f"consumer-{count}-{i}" for i in range(count)], watch):
        if not all_done.wait(timeout=600):
            raise SystemExit(f"only {done} of {jobs} jobs done in 600 s")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=2)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--consumers", default="1,2")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-"))
    end = last_closed_hour() + 3600
    start = end - args.hours * 3600
    tenants = [f"bench-tenant-{i + 1:03d}" for i in range(args.tenants)]
    # tenant by tenant: promtool holds a whole file's series at once (20 tenants x 200 pods x 24 h in one file
    # passes 20 GB), and each tenant's cluster is simulated alone anyway
    for i, tenant in enumerate(tenants):
        print(f"simulating {tenant} ({i + 1} of {len(tenants)})...", file=sys.stderr)
        sim = write_simulation(workdir / "sim", [tenant], start, args.hours, pods=args.pods, seed=i)
        create_blocks(Path(sim["openmetrics"]), workdir / "tsdb")
        Path(sim["openmetrics"]).unlink()
    jobs = args.tenants * args.hours
    rows = []
    with LocalPrometheus(workdir / "tsdb") as url:
        settled(workdir / "tsdb")
        for count in (int(c) for c in args.consumers.split(",")):
            env = consumer_env(url)
            rerun = [str(WORKER), "rerun", "--start", str(start), "--end", str(end)]
            for tenant in tenants:
                rerun += ["--tenant", tenant]
            subprocess.run(rerun, env=env, check=True, capture_output=True)
            seconds = run_consumers(count, env, workdir, jobs)
            rows.append((count, jobs, seconds, jobs / seconds * 60))
            delete_queues(env["KCW_QUEUE_PREFIX"])
    print(json.dumps({"tenants": args.tenants, "hours": args.hours, "pods_per_tenant": args.pods}))
    print(f"{'consumers':>9}  {'tenant-hours':>12}  {'seconds':>8}  {'tenant-hours/min':>16}")
    for count, n, seconds, rate in rows:
        print(f"{count:>9}  {n:>12}  {seconds:>8.1f}  {rate:>16.0f}")


def settled(tsdb: Path, quiet_seconds: float = 150) -> None:
    """Wait until Prometheus has merged the tenants' overlapping blocks (its compaction starts a minute after
    start-up): the consumers are timed against a Prometheus doing nothing else."""
    def blocks() -> set[str]:
        return {p.name for p in tsdb.iterdir() if p.is_dir() and len(p.name) == 26}

    seen, since = blocks(), time.monotonic()
    print(f"waiting for Prometheus to compact {len(seen)} blocks...", file=sys.stderr)
    while time.monotonic() - since < quiet_seconds:
        time.sleep(5)
        now = blocks()
        if now != seen:
            seen, since = now, time.monotonic()
    print(f"{len(seen)} blocks", file=sys.stderr)


def delete_queues(prefix: str) -> None:
    from kubecost_worker.jobs.broker import Broker

    broker = Broker(AMQP, prefix)
    channel = broker.connection.default_channel
    for queue in (broker.jobs, broker.dead, *broker.delays.values()):
        queue(channel).delete()
    broker.close()


if __name__ == "__main__":
    main()
