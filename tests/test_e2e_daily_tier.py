"""The daily tier end to end (simulator -> promtool -> Prometheus -> scheduler and consumer in one process -> chDB):
three simulated days run through the scheduler with ``KCW_RETENTION_DAYS=1`` and the daily tier kept for good, its
clock a day on at each tick. Each read of a day (the allocation API at day and week steps, shared and not, an
aggregated export, OptScale's daily view and export) answers the same before and after the day's hours expire
(1e-9; OptScale's costs bit for bit, so a second export writes nothing); the hour step and Metroculus's endpoints
answer the hours kept and nothing of the hours gone."""

from __future__ import annotations

import json
import math
import time
import uuid

import pytest

from kubecost_worker import wiring
from kubecost_worker.config import load_config
from kubecost_worker.hours import DAY, HOUR
from kubecost_worker.jobs.broker import Broker
from kubecost_worker.jobs.consumer import JobHandler, drain
from kubecost_worker.jobs.scheduler import Scheduler
from kubecost_worker.read import allocation, metroculus, optscale
from kubecost_worker.read.exports import export

from .helpers import Cluster, same_answer

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
TENANTS = ["tier-a", "tier-b"]
DAYS = 3
FIRST_DAY = int(time.time()) // DAY * DAY - (DAYS + 1) * DAY
STEP = 300  # seconds between samples: a fifth of the default's, the same model
READS = {
    "namespace by day": {"aggregate": "namespace", "step": "day"},
    "pod by day, idle shared": {"aggregate": "namespace,pod", "step": "day", "shareIdle": "true"},
    "controller by day, namespaces shared evenly": {"aggregate": "controller", "step": "day",
                                                    "shareNamespaces": "kube-system", "shareSplit": "even"},
    "label by day, filtered": {"aggregate": "label:app", "step": "day", "filter": 'namespace!:"kube-system"'},
}
REL = 1e-9
OPTSCALE_TABLE = "expenses"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("tiers"), TENANTS, FIRST_DAY, DAYS * 24, pods=6, seed=29, step=STEP)
    yield c
    c.prometheus.stop()


class Worker:
    """The embedded mode's scheduler and consumer on one store, the scheduler's clock set by the test."""

    def __init__(self, thanos_url: str, ch_url: str):
        self.config = load_config({"KCW_THANOS_URL": thanos_url, "KCW_CLICKHOUSE_URL": ch_url,
                                   "KCW_STEP_SECONDS": str(STEP), "KCW_RETENTION_DAYS": "1",
                                   "KCW_DAILY_RETENTION_DAYS": "0", "KCW_MAX_CATCHUP_HOURS": "30",
                                   "KCW_LAG_MINUTES": "0", "KCW_RECHECK_HOURS": "0", "KCW_BROKER_URL": "memory://",
                                   "KCW_QUEUE_PREFIX": f"t{uuid.uuid4().hex[:10]}"})
        self.broker = Broker.from_config(self.config)
        self.sink = wiring.open_sink(self.config)
        wiring.apply_schema(self.sink, self.config)
        self.pipeline = wiring.build_pipeline(self.config, self.sink)
        self.handler = JobHandler(self.config, self.broker, lambda: self.pipeline)
        self.now = FIRST_DAY
        self.scheduler = Scheduler(self.pipeline, self.broker, clock=lambda: self.now)

    def day_passes(self, day: int) -> None:
        """The clock just past ``day``'s end: a tick enqueues its hours (and keeps the daily tier), the consumer
        runs them, a second tick builds the day."""
        self.now = day + DAY + 60
        self.scheduler.tick()
        outcomes = drain(self.broker, self.handler)
        assert set(outcomes) <= {"done", "split"}, outcomes
        self.scheduler.tick()

    def close(self) -> None:
        self.sink.close()
        self.broker.close()


def reads_of(sink, tenant: str, day: int, tmp_path) -> dict[str, object]:
    """Every read of one day that must not change when its hours expire."""
    out: dict[str, object] = {name: list(allocation.allocation(sink, allocation.parse_request(params), tenant, day,
                                                               day + DAY))
                              for name, params in READS.items()}
    path = tmp_path / "day.jsonl"
    export(sink.client, path, "jsonl", tenant, day, day + DAY, "namespace,controller,label:team", "day")
    out["export by day"] = [json.loads(line) for line in path.read_text().splitlines()]
    out["optscale daily view"] = sink.query(
        "SELECT * FROM k8s_expenses_daily WHERE cloud_account_id = {t:String} AND day = toDate(toDateTime("
        "{d:Int64}, 'UTC')) ORDER BY ALL", {"t": tenant, "d": day})
    return out


def export_to_optscale(sink, start: int, end: int) -> list[optscale.Exported]:
    """Every tenant's days of ``[start, end)`` into OptScale's expenses table, each resource mapped to an id of its
    own first."""
    sink.client.command("INSERT INTO optscale_resource_ids (cloud_account_id, cloud_resource_id, resource_id) "
                        "SELECT DISTINCT cloud_account_id, cloud_resource_id, cloud_resource_id "
                        "FROM k8s_expenses_daily")
    return [optscale.export_tenant(sink.client, sink.client, OPTSCALE_TABLE, tenant, start, end) for tenant in TENANTS]


def test_three_days_through_the_scheduler_with_a_day_of_hours_kept(cluster, ch_url, tmp_path):
    worker = Worker(cluster.url, ch_url)
    sink = worker.sink
    try:
        days = [FIRST_DAY + k * DAY for k in range(DAYS)]
        optscale.create_table(sink.client, OPTSCALE_TABLE)
        before = {}
        for day in days:  # each day read, and exported to OptScale, while its hours are stored
            worker.day_passes(day)
            before.update({(tenant, day): reads_of(sink, tenant, day, tmp_path) for tenant in TENANTS})
            assert all(e.added and not e.unmapped for e in export_to_optscale(sink, day, day + DAY))
        # the last tick's clock is past the third day: today is the fourth, so the first two days' hours are gone
        (first_hour,), = sink.query("SELECT toUnixTimestamp(min(hour)) FROM k8s_expense_runs")
        assert first_hour == days[2]
        assert sink.query("SELECT toUnixTimestamp(toDateTime(min(toDate(hour)), 'UTC')) FROM k8s_expenses") == [
            (days[2],)]
        sealed = sink.query("SELECT cloud_account_id, toUnixTimestamp(toDateTime(day, 'UTC')) FROM "
                            "k8s_day_current_builds WHERE sealed ORDER BY ALL")
        assert sealed == [(t, d) for t in TENANTS for d in days[:2]]
        for (tenant, day), read in before.items():
            after = reads_of(sink, tenant, day, tmp_path)
            assert all(read.values()), (tenant, day)
            for name in read:
                assert same_answer(after[name], read[name]), (tenant, day, name)
            assert after["optscale daily view"] == read["optscale daily view"]  # bit for bit
        assert_the_hours_gone_are_told_by_nothing(sink, days)
        again = export_to_optscale(sink, days[0], days[-1] + DAY)  # the same costs: nothing to correct
        assert [(e.days, e.added, e.cancelled) for e in again] == [(DAYS, 0, 0)] * len(TENANTS)
    finally:
        worker.close()


def assert_the_hours_gone_are_told_by_nothing(sink, days: list[int]) -> None:
    """The hour step and Metroculus's endpoints answer the hours kept: the third day's, nothing of the first two."""
    window = days[0], days[-1] + DAY
    kept = {days[2] + k * HOUR for k in range(24)}
    hourly = allocation.parse_request({"aggregate": "namespace", "step": "hour"})
    assert {r["timestamp"] for r in allocation.allocation(sink, hourly, TENANTS[0], *window)} == kept
    costs = metroculus.cluster_costs(sink, TENANTS[0], *window)
    assert {p["timestamp"] for p in costs["data_points"]} == kept
    (stored,), = sink.query("SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String}",
                            {"t": TENANTS[0]})
    assert math.isclose(costs["total_cost"], stored, rel_tol=REL)
    metrics = json.loads(b"".join(metroculus.kubecost_metrics(sink, TENANTS[0], *window, None)))
    assert metrics and {p["timestamp"] for points in metrics.values() for p in points} <= kept
    whole = allocation.parse_request({"aggregate": "cluster"})  # step=window: the sealed days from the daily tier
    (row,) = allocation.allocation(sink, whole, TENANTS[0], *window)
    (daily,), = sink.query("SELECT sum(cost) FROM k8s_expenses_daily WHERE cloud_account_id = {t:String}",
                           {"t": TENANTS[0]})
    assert math.isclose(row["total_cost"], daily, rel_tol=REL) and row["total_cost"] > stored
