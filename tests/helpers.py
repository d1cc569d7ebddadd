"""What the tests share besides fixtures: the CLI run as a subprocess, chDB clients, a simulated cluster served by
a real Prometheus, job messages that must be refused, and stores the pipeline wrote.

chDB lets one process open one path at a time: tests that run the CLI in a subprocess open the path themselves
only after the subprocess has exited, and close it (``ch_client``) before the next CLI run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks
from kubecost_worker.devtools.simulation import write_simulation

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(sys.executable).parent / "kubecost-worker"


@contextlib.contextmanager
def ch_client(url: str):
    """A clickhouse-connect client on ``url``, closed afterwards so a CLI subprocess can open the path."""
    from kubecost_worker.store.client import connect

    client = connect(url)
    try:
        yield client
    finally:
        client.close()


def run_worker(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KCW_")}
    full_env.update(env or {})
    return subprocess.run([str(WORKER), *args], env=full_env, capture_output=True, text=True, timeout=timeout)


def lag_minutes_until(end: int) -> str:
    """``KCW_LAG_MINUTES`` for a scheduler in a subprocess (whose clock a test cannot set): every hour up to
    ``end`` is due, and the next one not for most of an hour. A module's window ends at the hour it was imported
    in, and the suite may have crossed an hour boundary since."""
    return str(max(0, (int(time.time()) - end) // 60))


def same_answer(a, b, rel: float = 1e-9) -> bool:
    """Equal to ``rel`` (1e-12 absolute near 0), an answer's rows taken by their step and group: rows tied on cost
    may swap when their sums move in the last bit (the daily tier adds the same hours in another order)."""
    if isinstance(a, list) and a and isinstance(a[0], dict):
        a, b = by_key(a), by_key(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_answer(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_answer(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):  # JSON writes 12.0 as 12
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    return a == b


def by_key(rows: list[dict]) -> list[dict]:
    """An answer's rows in the order of their step and group (their text values, timestamp and start)."""
    return sorted(rows, key=lambda r: [str(v) for k, v in r.items()
                                       if isinstance(v, str) or k in ("timestamp", "start")])


def iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Cluster:
    """A simulated cluster served by a real Prometheus."""

    def __init__(self, root: Path, tenants: list[str], start: int, hours: int, pods: int = 20, seed: int = 0,
                 step: int = 60):
        self.tenants, self.start, self.hours = tenants, start, hours
        self.sim = write_simulation(root / "sim", tenants, start, hours, nodes=3, pods=pods, step=step, seed=seed)
        create_blocks(Path(self.sim["openmetrics"]), root / "tsdb")
        self.prometheus = LocalPrometheus(root / "tsdb")
        self.url = self.prometheus.start()
        self.truth = [json.loads(line) for line in Path(self.sim["ground_truth"]).read_text().splitlines() if line]

    def worker_env(self, ch_url: str) -> dict[str, str]:
        return {"KCW_THANOS_URL": self.url, "KCW_CLICKHOUSE_URL": ch_url}

    def instant(self, promql: str, at: float) -> list[dict]:
        body = requests.get(f"{self.url}/api/v1/query", params={"query": promql, "time": at}, timeout=30).json()
        assert body["status"] == "success", body
        return body["data"]["result"]


def bad_job_messages(good: dict, max_rerun_hours: int) -> dict[bytes, str]:
    """Malformed job bodies of every kind, each with the reason its dead letter must carry."""
    start = int(dt.datetime.fromisoformat(good["start"].replace("Z", "+00:00")).timestamp())
    return {
        b"{not json": "not JSON",
        b"\xff\xfe not utf-8": "not JSON",
        json.dumps({k: v for k, v in good.items() if k != "end"}).encode(): "missing fields: end",
        json.dumps({**good, "priority": 1}).encode(): "unknown fields: priority",
        json.dumps({**good, "end": good["start"]}).encode(): "start must be before end",
        json.dumps({**good, "start": iso(start + 60)}).encode(): "not on an hour boundary",
        json.dumps({**good, "end": iso(start + (max_rerun_hours + 1) * 3600)}).encode():
            f"longer than KCW_MAX_RERUN_HOURS={max_rerun_hours}",
        json.dumps({**good, "cloud_account_id": 'a"} or {tenant_id=~".+'}).encode(): "safe alphabet",
        json.dumps({**good, "reason": "x" * 5000}).encode(): "larger than 4096",
        # bodies that once stopped the consumer: the parser's recursion, dates no date function takes
        b"[" * 2000 + b"]" * 2000: "unreadable message: RecursionError",
        json.dumps({**good, "start": 253402300800}).encode(): "start is outside 2000-2200",  # the year 10000
        json.dumps({**good, "start": 3600 * 10**20}).encode(): "start is outside 2000-2200",
        json.dumps({**good, "end": "9999-12-31T23:00:00Z"}).encode(): "end is outside 2000-2200",
        json.dumps({**good, "requested_at": -1}).encode(): "requested_at is outside 2000-2200",
        json.dumps({**good, "start": 1e300}).encode(): "must be an ISO-8601 UTC time or unix seconds",
    }


@contextlib.contextmanager
def pipeline_written(root: Path, tenants: list[str], start: int, hours: int, pods: int, seed: int):
    """A simulated cluster run through the real pipeline (Prometheus -> worker -> chDB, in this process);
    yields the sink on the written data, with Prometheus already stopped."""
    from kubecost_worker.config import load_config
    from kubecost_worker.pipeline import run_hours
    from kubecost_worker.hours import hour_starts
    from kubecost_worker.store import migrations
    from kubecost_worker.store.clickhouse import ClickHouseSink
    from kubecost_worker.wiring import build_pipeline

    cluster = Cluster(root, tenants, start, hours, pods=pods, seed=seed)
    config = load_config({"KCW_THANOS_URL": cluster.url, "KCW_CLICKHOUSE_URL": f"chdb://{root / 'ch'}"})
    try:
        with ch_client(config.clickhouse_url) as client:
            migrations.migrate(client)
            sink = ClickHouseSink(client, url=config.clickhouse_url)
            done = run_hours(build_pipeline(config, sink), tenants, hour_starts(start, start + hours * 3600))
            assert done.failed == 0
            cluster.prometheus.stop()
            yield sink
    finally:
        cluster.prometheus.stop()
