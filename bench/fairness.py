"""Many tenants: other tenants' scheduled hours while one large tenant backfills, through RabbitMQ.

    .venv/bin/python bench/fairness.py [--small 20] [--small-pods 200] [--big-pods 2000] [--hours 24] [--consumers 1]

Two simulations in one Prometheus (their blocks side by side): ``--small`` tenants of ``--small-pods`` pods, and one
tenant of ``--big-pods`` pods. The large tenant's backfill of ``--hours`` hours is published first (one rerun
job: the consumer splits it into a batch and the rest, the rest again when its turn comes), then, once its first
hours are being processed, every small tenant's newest hour as a ``scheduled`` job, as the scheduler's tick
would. ``--consumers`` consumers on RabbitMQ (each its own chDB path). Printed: how long each scheduled hour waited
from its publication to its commit, against the time of one batch of the backfill (the bound the split aims for:
a scheduled hour waits for the batch in progress, not for the backfill).
Needs RabbitMQ on 127.0.0.1:5672 (guest/guest).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumers import WORKER, consumer_env, consumers_running, delete_queues  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks  # noqa: E402
from kubecost_worker.devtools.simulation import write_simulation  # noqa: E402
from kubecost_worker.hours import last_closed_hour  # noqa: E402

BIG = "bench-big-tenant"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--small-pods", type=int, default=200)
    parser.add_argument("--big-pods", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--consumers", type=int, default=1)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-fairness-"))
    last = last_closed_hour()
    first = last - (args.hours - 1) * 3600
    small = [f"bench-small-{i + 1:03d}" for i in range(args.small)]
    print(f"simulating {args.small} x {args.small_pods} pods and {args.big_pods} pods for {args.hours + 1} h...",
          file=sys.stderr)
    for name, tenants, pods, hours in (("small", small, args.small_pods, 2), ("big", [BIG], args.big_pods,
                                                                              args.hours + 1)):
        start = last - 3600 if name == "small" else first - 3600
        sim = write_simulation(workdir / f"sim-{name}", tenants, start, hours, nodes=max(3, pods // 50), pods=pods)
        create_blocks(Path(sim["openmetrics"]), workdir / "tsdb")  # blocks of both, side by side
        Path(sim["openmetrics"]).unlink()
    with LocalPrometheus(workdir / "tsdb") as url:
        env = {**consumer_env(url), "KCW_LOG_LEVEL": "info"}
        done: dict[tuple[str, str], float] = {}
        started_big = threading.Event()
        lock = threading.Lock()

        def watch(stream) -> None:
            for line in stream:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == "tenant-hour done":
                    with lock:
                        done[(record["tenant"], record["hour"])] = time.monotonic()
                    if record["tenant"] == BIG:
                        started_big.set()

        with consumers_running(env, [workdir / f"consumer-{i}" for i in range(args.consumers)], watch):
            backfill_published = time.monotonic()
            subprocess.run([str(WORKER), "rerun", "--tenant", BIG, "--start", str(first), "--end", str(last + 3600)],
                           env=env, check=True, capture_output=True)
            if not started_big.wait(600):
                raise SystemExit("the backfill did not start")
            published = time.monotonic()
            rerun = [str(WORKER), "rerun", "--start", str(last), "--end", str(last + 3600)]
            for tenant in small:
                rerun += ["--tenant", tenant]
            subprocess.run(rerun, env=env, check=True, capture_output=True)
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline and len(done) < args.small + args.hours:
                time.sleep(0.5)
        delete_queues(env["KCW_QUEUE_PREFIX"])
    big = sorted(t for (tenant, _), t in done.items() if tenant == BIG)
    waits = sorted(t - published for (tenant, _), t in done.items() if tenant != BIG)
    backfill_s = big[-1] - backfill_published if big else float("nan")
    per_hour = backfill_s / max(len(big), 1)
    print(f"\n{args.small} tenants of {args.small_pods} pods scheduled while a {args.big_pods}-pod tenant backfills "
          f"{args.hours} hours, {args.consumers} consumer(s) (KCW_BATCH_HOURS default)\n")
    print(f"backfill: {len(big)} hours in {backfill_s:.1f} s ({per_hour:.2f} s an hour)")
    if waits:
        print(f"scheduled hours: {len(waits)} done; wait from publication to commit: first {waits[0]:.1f} s, "
              f"median {statistics.median(waits):.1f} s, last {waits[-1]:.1f} s")
        print(f"the backfill was done {big[-1] - published:.1f} s after they were published: the scheduled hours "
              f"{'did not wait for it' if waits[-1] < big[-1] - published else 'waited for all of it'}")


if __name__ == "__main__":
    main()
