"""A job far longer than RabbitMQ's heartbeat timeout, through the real `kubecost-worker consume`: done and acked once.

    .venv/bin/python bench/long_job.py [--minutes 10] [--heartbeat 30]

One simulated tenant-hour served by a local Prometheus behind a proxy that holds every answer back, so that the
tenant-hour takes about ``--minutes`` (Thanos's own timeout, 60 s, is never reached); one job published with
`kubecost-worker rerun`, one consumer with the default heartbeat. Prints how long the job took, how often it was
done, how often the consumer (re)connected and what is left in the queue. Before the heartbeat thread, such a job
was never acked: RabbitMQ dropped the connection after two missed heartbeats and the job started again.
Needs RabbitMQ on 127.0.0.1:5672 (guest/guest).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kombu

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumers import AMQP, WORKER, consumer_env, delete_queues  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks  # noqa: E402
from kubecost_worker.devtools.simulation import write_simulation  # noqa: E402
from kubecost_worker.hours import last_closed_hour  # noqa: E402
from tests.faultproxy import FaultProxy, Slow  # noqa: E402

TENANT = "long-job-tenant"
QUERIES_PER_HOUR = 13  # the range probe, the samples, 7 summaries, first, last, the census, a re-fetch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--heartbeat", type=int, default=30)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-long-"))
    hour = last_closed_hour() - 2 * 3600
    sim = write_simulation(workdir / "sim", [TENANT], hour, 1, nodes=3, pods=10)
    create_blocks(Path(sim["openmetrics"]), workdir / "tsdb")
    with LocalPrometheus(workdir / "tsdb") as url, FaultProxy(url, upstream_timeout=60) as proxy:
        proxy.default = Slow(min(55.0, args.minutes * 60 / QUERIES_PER_HOUR))
        env = {**consumer_env(proxy.url), "KCW_CLICKHOUSE_URL": f"chdb://{workdir / 'ch'}",
               "KCW_THANOS_PARALLEL_QUERIES": "1", "KCW_BROKER_HEARTBEAT_SECONDS": str(args.heartbeat)}
        subprocess.run([str(WORKER), "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([str(WORKER), "rerun", "--tenant", TENANT, "--start", str(hour), "--end", str(hour + 3600)],
                       env=env, check=True, capture_output=True)
        log = workdir / "consumer.log"
        with open(log, "w") as err:
            consumer = subprocess.Popen([str(WORKER), "consume"], env=env, stdout=subprocess.DEVNULL, stderr=err)
        began = time.monotonic()
        events: list[dict] = []
        while not any(e.get("event") == "tenant-hour done" for e in events):
            time.sleep(5)
            events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
            if consumer.poll() is not None or time.monotonic() - began > args.minutes * 60 * 3:
                raise SystemExit(f"the consumer stopped or took too long:\n{log.read_text()[-3000:]}")
        took = time.monotonic() - began
        time.sleep(3 * args.heartbeat)  # a lost ack would have the job back by now
        consumer.terminate()
        consumer.wait(60)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    with kombu.Connection(AMQP) as conn:
        left = conn.default_channel.queue_declare(queue=f"{env['KCW_QUEUE_PREFIX']}.jobs", passive=True).message_count
    delete_queues(env["KCW_QUEUE_PREFIX"])
    done = sum(e.get("event") == "tenant-hour done" for e in events)
    connects = sum(e.get("event") == "connected to the broker" for e in events)
    print(f"job of {took / 60:.1f} min with a {args.heartbeat} s heartbeat: done {done} time(s), "
          f"connected {connects} time(s), {left} message(s) left in the queue "
          f"({'acked once' if done == 1 and connects == 1 and left == 0 else 'NOT acked once'})")


if __name__ == "__main__":
    main()
