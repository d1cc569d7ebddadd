"""``jobs/`` through kombu's memory:// transport in one process (the embedded mode), with a real Prometheus and
chDB: bad messages, transient faults of Thanos and of ClickHouse, retries and dead letters, the scheduler."""

from __future__ import annotations

import bz2
import contextlib
import datetime as dt
import json
import os
import time
import uuid

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from kubecost_worker import wiring
from kubecost_worker.config import load_config
from kubecost_worker.devtools.accuracy import compare_with_ground_truth, stored_rows
from kubecost_worker.jobs.broker import ATTEMPTS, DEAD_LETTER_BYTES, ERROR, ERROR_KIND, TRUNCATED, Broker, body_of
from kubecost_worker.jobs.consumer import JobHandler, drain
from kubecost_worker.jobs.messages import Job, iso
from kubecost_worker.jobs.scheduler import Scheduler
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.source.thanos import ThanosClient, ThanosSettings

from .helpers import Cluster, bad_job_messages, ch_client, lag_minutes_until
from .faultproxy import FaultProxy, Status

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
TENANTS = ["jobs-tenant-a", "jobs-tenant-b"]
HOURS = 3
END = int(time.time()) // 3600 * 3600
START = END - HOURS * 3600


def just_after_the_data() -> float:
    """The schedulers' clock: a minute after the simulated hours end, so that a test running across an hour
    boundary does not find the next hour (without data) due as well."""
    return END + 60


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("jobs"), TENANTS, START, HOURS, pods=10, seed=3)
    yield c
    c.prometheus.stop()


class World:
    """Config, broker, pipeline and handler of one in-process worker."""

    def __init__(self, thanos_url: str, ch_url: str, **settings: str):
        self.config = load_config({"KCW_THANOS_URL": thanos_url, "KCW_CLICKHOUSE_URL": ch_url,
                                   "KCW_BROKER_URL": "memory://", "KCW_QUEUE_PREFIX": f"t{uuid.uuid4().hex[:10]}",
                                   "KCW_RETRY_DELAYS_SECONDS": "1", "KCW_MAX_RETRIES": "2", "KCW_THANOS_RETRIES": "1",
                                   "KCW_LAG_MINUTES": "0", "KCW_MAX_CATCHUP_HOURS": str(HOURS + 2), **settings})
        self.broker = Broker.from_config(self.config)
        self.sink = wiring.open_sink(self.config)
        wiring.apply_schema(self.sink, self.config)
        self.pipeline = wiring.build_pipeline(self.config, self.sink)
        self.handler = JobHandler(self.config, self.broker, lambda: self.pipeline)

    def dead_letters(self) -> list[tuple[dict, bytes]]:
        out = []
        while (message := self.broker.get(self.broker.dead)) is not None:
            out.append((dict(message.headers), body_of(message)))
            message.ack()
        return out

    def succeeded(self) -> list[tuple[str, int]]:
        return sorted(self.sink.query("SELECT cloud_account_id, toUnixTimestamp(hour) FROM k8s_expense_runs "
                                      "WHERE status = 'succeeded'"))

    def close(self):
        self.sink.close()
        self.broker.close()


@pytest.fixture
def world_factory(ch_url):
    made = []

    def make(thanos_url: str, **settings: str) -> World:
        made.append(World(thanos_url, ch_url, **settings))
        return made[-1]

    yield make
    for world in made:
        world.close()


def job(tenant=TENANTS[0], start=START, end=START + 3600, reason="rerun") -> Job:
    return Job(tenant, start, end, reason, int(time.time()))


def truth_for(cluster, tenant, hours):
    return [r for r in cluster.truth if r["cloud_account_id"] == tenant and r["hour"] in hours]


def test_bad_messages_are_dead_lettered_with_their_reason_and_the_good_one_is_processed(cluster, world_factory):
    world = world_factory(cluster.url)
    good = json.loads(job().to_json())
    bad = bad_job_messages(good, max_rerun_hours=744)
    for body in bad:
        world.broker.publish_raw(body)
    world.broker.publish(job())
    outcomes = drain(world.broker, world.handler)
    assert outcomes == {"dead-invalid": len(bad), "done": 1}
    dead = world.dead_letters()
    assert [body for _, body in dead] == list(bad)
    for (headers, _), reason in zip(dead, bad.values()):
        assert reason in headers[ERROR] and headers[ERROR_KIND] == "invalid" and headers[ATTEMPTS] == 0
    assert world.succeeded() == [(TENANTS[0], START)]
    accuracy = compare_with_ground_truth(stored_rows(world.sink), truth_for(cluster, TENANTS[0], {START}))
    assert accuracy.exact and accuracy.max_rel_error < 1e-9


def test_a_range_is_one_batch_and_its_failed_hour_is_retried_as_a_job_of_its_own(cluster, world_factory):
    """A range of up to KCW_BATCH_HOURS hours is one job and one batch (the tenant not seen yet: sized by its
    census, asked ahead); a fault in one batched hour fails that hour only, which goes back through the delay
    queue as a job of one hour, and is then stored like the others (equal to the ground truth)."""
    from .faultproxy import Rewrite, When

    def drop_the_last_point(body: dict) -> dict:
        if body["data"]["resultType"] == "matrix" and body["data"]["result"]:
            body["data"]["result"][0]["values"].pop()
        return body

    with FaultProxy(cluster.url) as proxy:
        proxy.default = When(lambda q: q.startswith("avg_over_time(container_cpu_allocation"),
                             Rewrite(drop_the_last_point))
        world = world_factory(proxy.url)
        world.broker.publish(job(end=START + 3 * 3600))
        outcomes = drain(world.broker, world.handler)
        ranges = [path for path in proxy.seen if path.startswith("/api/v1/query_range")]
    assert outcomes == {"partly-done": 1, "retried": 1, "done": 1}
    assert ranges  # the two hours' summaries came from range queries
    assert world.dead_letters() == []
    hours = {START + i * 3600 for i in range(3)}
    assert set(world.succeeded()) == {(TENANTS[0], h) for h in hours}
    failed = world.sink.query("SELECT toUnixTimestamp(hour), error FROM k8s_expense_runs WHERE status = 'failed'")
    assert [h for h, _ in failed] == [START + 2 * 3600] and "incomplete" in failed[0][1]
    accuracy = compare_with_ground_truth(stored_rows(world.sink), truth_for(cluster, TENANTS[0], hours))
    assert accuracy.exact and accuracy.max_rel_error < 1e-9


def test_a_long_backfill_keeps_other_tenants_waiting_one_of_its_batches_at_most(cluster, world_factory):
    """A range is split into its first batch and the rest, the rest split again when its turn comes: a tenant's
    scheduled hour queued while a backfill runs waits for the batch in progress, not for the whole backfill."""
    world = world_factory(cluster.url, KCW_BATCH_HOURS="1")
    world.broker.publish(job(TENANTS[0], end=START + 3 * 3600, reason="backfill"))

    def handle_one() -> str:
        message = world.broker.get(world.broker.jobs)
        assert message is not None
        return world.handler.handle(message)

    assert [handle_one(), handle_one()] == ["split", "done"]  # the first batch of the backfill ran
    world.broker.publish(job(TENANTS[1], start=START + 2 * 3600, end=START + 3 * 3600, reason="scheduled"))
    assert drain(world.broker, world.handler) == {"split": 1, "done": 3}
    order = [(tenant, hour) for tenant, hour in world.sink.query(
        "SELECT cloud_account_id, toUnixTimestamp(hour) FROM k8s_expense_runs WHERE status = 'succeeded' "
        "ORDER BY recorded_at")]
    assert order == [(TENANTS[0], START), (TENANTS[1], START + 2 * 3600), (TENANTS[0], START + 3600),
                     (TENANTS[0], START + 2 * 3600)]


def test_compressed_bodies_are_refused_unread_on_the_memory_transport_too(cluster, world_factory):
    world = world_factory(cluster.url)
    bomb = bz2.compress(b" " * 20_000_000)
    oversized = json.dumps({"padding": "x" * 50_000}).encode()
    world.broker.publish_raw(bomb, {"compression": "application/x-bz2"})
    world.broker.publish_raw(b"garbage", {"compression": "application/x-bz2"})
    world.broker.publish_raw(oversized)
    world.broker.publish(job())
    assert drain(world.broker, world.handler) == {"dead-invalid": 3, "done": 1}
    dead = world.dead_letters()
    assert [body for _, body in dead] == [bomb, b"garbage", oversized[:DEAD_LETTER_BYTES]]
    assert [headers[ERROR] for headers, _ in dead[:2]] == ["compressed body (application/x-bz2) refused unread"] * 2
    assert dead[2][0][TRUNCATED] == len(oversized)
    assert world.succeeded() == [(TENANTS[0], START)]


def test_transient_thanos_faults_are_retried_with_a_delay_then_succeed(cluster, world_factory):
    with FaultProxy(cluster.url) as proxy:
        world = world_factory(proxy.url, KCW_BATCH_HOURS="1")
        unavailable = Status(503, {"status": "error", "errorType": "unavailable", "error": "store down"})
        proxy.script(unavailable, unavailable)  # the first attempt of each hour fails
        world.broker.publish(job(end=START + 2 * 3600))  # a range: split into one job per hour first
        started = time.monotonic()
        outcomes = drain(world.broker, world.handler)
        assert outcomes == {"split": 1, "retried": 2, "done": 2}
        assert time.monotonic() - started >= 1  # each hour waited its 1-second delay (side by side)
    assert world.dead_letters() == []
    assert world.succeeded() == [(TENANTS[0], START), (TENANTS[0], START + 3600)]
    statuses = world.sink.query("SELECT status, count() FROM k8s_expense_runs GROUP BY status ORDER BY status")
    assert dict(statuses) == {"running": 4, "succeeded": 2, "failed": 2}
    assert compare_with_ground_truth(stored_rows(world.sink),
                                     truth_for(cluster, TENANTS[0], {START, START + 3600})).exact


def test_a_fault_that_does_not_clear_dead_letters_the_job_and_stores_nothing(cluster, world_factory):
    with FaultProxy(cluster.url) as proxy:
        world = world_factory(proxy.url)
        proxy.default = Status(200, {"status": "success", "data": {"resultType": "matrix", "result": []},
                                     "warnings": ["partial response: store eu-1 unreachable"]})
        world.broker.publish(job())
        outcomes = drain(world.broker, world.handler)
    assert outcomes == {"retried": 2, "dead-transient": 1}
    (headers, body), = world.dead_letters()
    assert headers[ERROR_KIND] == "transient" and "partial response" in headers[ERROR] and headers[ATTEMPTS] == 2
    assert json.loads(body)["cloud_account_id"] == TENANTS[0]
    assert world.sink.query("SELECT count() FROM k8s_expenses_current") == [(0,)]
    assert world.sink.query("SELECT countIf(status = 'failed'), countIf(status = 'succeeded') FROM k8s_expense_runs") \
        == [(3, 0)]


class FlakyClickHouse:
    """Fault injection in front of a real chDB client: calls fail while ``down`` is set, or one insert into
    ``fail_insert_into`` fails after the rows before it were written."""

    def __init__(self, client):
        self._client = client
        self.down = False
        self.fail_insert_into: str | None = None

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if name not in ("insert", "query", "command"):
            return attribute

        def call(*args, **kwargs):
            if self.down:
                raise OperationalError("connection refused (injected)")
            if name == "insert" and args and args[0] == self.fail_insert_into:
                self.fail_insert_into = None
                raise OperationalError("server went away mid-write (injected)")
            return attribute(*args, **kwargs)

        return call


def test_clickhouse_failing_mid_write_leaves_nothing_partial_and_the_retry_succeeds(cluster, world_factory):
    world = world_factory(cluster.url)
    flaky = FlakyClickHouse(world.sink.client)
    world.sink.client = flaky
    world.broker.publish(job())
    # the expense rows are written, then the metric samples insert fails: the run never commits
    flaky.fail_insert_into = "kubecost_metrics_hourly"
    world.broker.release_due()
    first = world.broker.get(world.broker.jobs)
    assert world.handler.handle(first) == "retried"
    assert world.sink.query("SELECT count() FROM k8s_expenses") != [(0,)]  # rows of the broken run exist...
    assert world.sink.query("SELECT count() FROM k8s_expenses_current") == [(0,)]  # ...and are invisible
    # now the server is gone entirely while the retry arrives, then comes back
    flaky.down = True
    time.sleep(1.05)
    world.broker.release_due()
    second = world.broker.get(world.broker.jobs)
    assert world.handler.handle(second) == "retried"
    flaky.down = False
    assert drain(world.broker, world.handler)["done"] == 1
    assert compare_with_ground_truth(stored_rows(world.sink), truth_for(cluster, TENANTS[0], {START})).exact
    assert world.sink.query("SELECT uniqExact(run_id) FROM k8s_expenses") == [(2,)]  # the broken run's, invisible
    assert world.sink.collect_garbage().runs == 1  # failed: removed by the next cleanup
    assert world.sink.query("SELECT uniqExact(run_id) FROM k8s_expenses") == [(1,)]
    assert compare_with_ground_truth(stored_rows(world.sink), truth_for(cluster, TENANTS[0], {START})).exact


def test_a_rerun_that_finds_the_hour_gone_is_refused_and_a_forced_range_replaces_it(cluster, world_factory):
    """Through the broker: a rerun over hours whose samples Thanos no longer returns is acked as 'refused' (no retry,
    no dead letter) and the stored hours stay; the same range with ``force`` is split into forced hours that
    replace them."""
    from .faultproxy import Rewrite

    world = world_factory(cluster.url, KCW_BATCH_HOURS="1")
    world.broker.publish(job(end=START + 2 * 3600))
    assert drain(world.broker, world.handler) == {"split": 1, "done": 2}
    stored = sorted(stored_rows(world.sink), key=repr)  # the view's rows come in no set order
    with FaultProxy(cluster.url) as proxy:
        proxy.default = Rewrite(lambda body: {**body, "data": {**body["data"], "result": []}})
        world.pipeline.thanos = ThanosClient(ThanosSettings(proxy.url, retries=1))
        world.broker.publish(job(end=START + 2 * 3600))
        assert drain(world.broker, world.handler) == {"split": 1, "refused": 2}
        assert sorted(stored_rows(world.sink), key=repr) == stored and world.dead_letters() == []
        forced = Job(TENANTS[0], START, START + 2 * 3600, "rerun", int(time.time()), force=True)
        world.broker.publish(forced)
        assert drain(world.broker, world.handler) == {"split": 1, "done": 2}
    assert stored_rows(world.sink) == []  # replaced by what Thanos holds now: nothing


def test_an_input_that_breaks_an_invariant_fails_its_hour_and_is_dead_lettered_as_unexpected(
        cluster, world_factory, monkeypatch):
    """The model refuses a summary where it needs samples (a ValueError: an invariant of its input): that hour is
    recorded failed with the reason, its job dead-lettered as ``unexpected``, and the next job goes on."""
    import kubecost_worker.source.extract as extract
    from kubecost_worker.model.series import HourInput, Summary

    real = extract.fetch_hour

    def broken_for_the_first_hour(client, label, tenant, start, end, step, **options):
        hour_input = real(client, label, tenant, start, end, step, **options)
        if start != START:
            return hour_input
        series = {**hour_input.series, "kubecost_cluster_info": [Summary({"id": "c"}, mean=1.0)]}
        return HourInput(hour_input.tenant, hour_input.start, hour_input.end, hour_input.step, series,
                         hour_input.counted)

    monkeypatch.setattr(extract, "fetch_hour", broken_for_the_first_hour)
    world = world_factory(cluster.url)
    world.broker.publish(job())
    world.broker.publish(job(start=START + 3600, end=START + 7200))
    assert drain(world.broker, world.handler) == {"dead-unexpected": 1, "done": 1}
    (headers, _), = world.dead_letters()
    assert headers[ERROR_KIND] == "unexpected" and "a summary where the hourly mean needs samples" in headers[ERROR]
    assert world.sink.query("SELECT toUnixTimestamp(hour), status, error FROM k8s_expense_runs "
                            "WHERE status IN ('failed', 'running') AND hour = toDateTime({h:UInt32}, 'UTC') "
                            "ORDER BY recorded_at DESC LIMIT 1", {"h": START})[0][:2] == (START, "failed")
    assert world.succeeded() == [(TENANTS[0], START + 3600)]


def test_scheduler_enqueues_what_is_due_and_a_second_tick_enqueues_nothing(cluster, world_factory):
    world = world_factory(cluster.url)
    scheduler = Scheduler(world.pipeline, world.broker, clock=just_after_the_data)
    first = scheduler.tick()
    assert sorted((j.cloud_account_id, h, j.reason) for j in first for h in j.hour_starts) == sorted(
        [(t, h, "scheduled" if h == END - 3600 else "catch-up") for t in TENANTS for h in range(START, END, 3600)])
    # every tenant's scheduled hour first, then each tenant's catch-up as one range (fetched as one batch)
    assert [j.reason for j in first] == ["scheduled"] * len(TENANTS) + ["catch-up"] * len(TENANTS)
    assert all(len(j.hour_starts) == HOURS - 1 for j in first if j.reason == "catch-up")
    assert scheduler.tick() == []  # queued and trusted: not enqueued again
    assert drain(world.broker, world.handler) == {"done": 2 * len(TENANTS)}
    assert scheduler.tick() == []
    assert compare_with_ground_truth(stored_rows(world.sink), cluster.truth).exact
    # a worker restarted with an in-memory queue does not trust the old 'queued' records: here the hour's
    # runs are gone from the ledger (as if the process died after the tick), only 'queued' is left
    world.sink.client.command("ALTER TABLE k8s_expense_runs DELETE WHERE status != 'queued' "
                              "AND hour = {h:DateTime('UTC')} SETTINGS mutations_sync = 1",
                              parameters={"h": dt.datetime.fromtimestamp(START, dt.timezone.utc)})
    again = Scheduler(world.pipeline, world.broker, clock=just_after_the_data).tick()
    assert sorted((j.cloud_account_id, j.start) for j in again) == [(t, START) for t in TENANTS]


def test_late_data_is_noticed_and_the_hour_converges_to_a_fresh_run(cluster, world_factory, tmp_path):
    """The worker first sees the last hour with its second half missing (remote-write still retrying), then
    Thanos holds all of it: the next tick notices the grown sample count and the hour is computed again."""
    from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks

    last = END - 3600
    thinned = tmp_path / "thinned.om"
    with open(cluster.sim["openmetrics"]) as source, open(thinned, "w") as out:
        for line in source:
            if not line.startswith("#") and last + 1800 <= int(line.rsplit(" ", 1)[1]) < END:
                continue
            out.write(line)
    create_blocks(thinned, tmp_path / "tsdb")
    with LocalPrometheus(tmp_path / "tsdb") as early_url:
        world = world_factory(early_url, KCW_RECHECK_HOURS="2")
        Scheduler(world.pipeline, world.broker, clock=just_after_the_data).tick()
        assert drain(world.broker, world.handler) == {"done": 2 * len(TENANTS)}  # scheduled, and a catch-up range
        early = compare_with_ground_truth(stored_rows(world.sink), cluster.truth)
        assert early.max_rel_error > 0.01  # the last hour was computed from half of its samples
        assert Scheduler(world.pipeline, world.broker, clock=just_after_the_data).tick() == []  # nothing new yet
    world.pipeline.thanos = ThanosClient(ThanosSettings.from_config(load_config({"KCW_THANOS_URL": cluster.url})))
    late = Scheduler(world.pipeline, world.broker, clock=just_after_the_data).tick()
    assert sorted((j.cloud_account_id, j.start, j.reason) for j in late) == [(t, last, "late-data") for t in TENANTS]
    assert drain(world.broker, world.handler) == {"done": len(TENANTS)}
    converged = compare_with_ground_truth(stored_rows(world.sink), cluster.truth)
    assert converged.exact and converged.max_rel_error < 1e-9
    assert Scheduler(world.pipeline, world.broker, clock=just_after_the_data).tick() == []


def test_run_command_catches_up_at_start_serves_and_stops_on_sigterm(cluster, tmp_path):
    """`kubecost-worker run --serve` (scheduler + consumer + read API, memory://, one chDB path): a tick at
    start-up enqueues every due hour, the consumer processes them, the API serves them while the worker runs,
    SIGTERM stops it cleanly; the stored hours equal the ground truth."""
    import signal
    import subprocess
    import threading

    from .helpers import WORKER

    ch_url = f"chdb://{tmp_path / 'ch'}"
    from kubecost_worker.devtools.localprom import free_port

    port, metrics_port = free_port(), free_port()
    # the simulated hours due and no later one, and no scheduled tick while the test runs: its counts are exact
    env = {"PATH": os.environ["PATH"], **cluster.worker_env(ch_url), "KCW_LAG_MINUTES": lag_minutes_until(END),
           "KCW_SCHEDULE_MINUTE": str((int(time.time()) // 60 + 30) % 60),
           "KCW_MAX_CATCHUP_HOURS": str(HOURS + 2), "KCW_LOG_FORMAT": "json", "KCW_CLUSTER_SECRET": "run-secret",
           "KCW_API_PORT": str(port), "KCW_METRICS_PORT": str(metrics_port)}
    process = subprocess.Popen([str(WORKER), "run", "--serve"], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    done = threading.Event()
    lines: list[str] = []

    simulated = {(t, iso(h).replace("Z", "+00:00")) for t in TENANTS for h in range(START, END, 3600)}
    finished: set[tuple[str, str]] = set()

    def watch():
        # the simulated hours, whatever else the tick finds due (run across an hour boundary, the hour just
        # closed is due too, and has no data)
        for line in process.stderr:
            lines.append(line)
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("event") == "tenant-hour done":
                    finished.add((record.get("tenant"), record.get("hour")))
            if simulated <= finished:
                done.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert done.wait(120), "".join(lines[-20:])
        import requests

        for tenant in TENANTS:
            response = requests.get(f"http://127.0.0.1:{port}/metroculus/v2/kubecost_cluster_costs",
                                    params={"cloud_account_id": tenant, "start_date": START, "end_date": END},
                                    headers={"Secret": "run-secret"}, timeout=10)
            assert response.status_code == 200
            expected = sum(r["total_cost"] for r in cluster.truth if r["cloud_account_id"] == tenant)
            assert response.json()["total_cost"] == pytest.approx(expected, rel=1e-9)
        # self-metrics, parsed with prometheus-client's own parser, on the worker's port and the API's
        from prometheus_client.parser import text_string_to_metric_families

        for metrics_url in (f"http://127.0.0.1:{metrics_port}/metrics", f"http://127.0.0.1:{port}/metrics"):
            families = {f.name: f for f in text_string_to_metric_families(requests.get(metrics_url, timeout=10).text)}
            succeeded = [s.value for s in families["kcw_tenant_hours"].samples
                         if s.name == "kcw_tenant_hours_total" and s.labels == {"outcome": "succeeded"}]
            assert succeeded == [len(TENANTS) * HOURS]
            assert sum(s.value for s in families["kcw_rows_written"].samples if s.name == "kcw_rows_written_total") \
                == sum(1 for r in cluster.truth)
            assert [s.value for s in families["kcw_run_duration_seconds"].samples
                    if s.name == "kcw_run_duration_seconds_count"] == [len(TENANTS) * HOURS]
            assert any(s.labels == {"endpoint": "/api/v1/query"} for s in families["kcw_thanos_request_seconds"].samples)
            lags = {s.labels["tenant"]: s.value for s in families["kcw_newest_complete_hour_lag_seconds"].samples}
            assert set(lags) <= set(TENANTS)
            enqueued = sum(s.value for s in families["kcw_jobs_enqueued"].samples if s.name == "kcw_jobs_enqueued_total")
            assert enqueued == 2 * len(TENANTS)  # each tenant: its scheduled hour, and its catch-up as one range
        for base in (f"http://127.0.0.1:{metrics_port}", f"http://127.0.0.1:{port}"):
            assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
            assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
    assert "run: stopped" in process.stdout.read()
    with ch_client(ch_url) as client:
        assert compare_with_ground_truth(stored_rows(ClickHouseSink(client)), cluster.truth).exact
        assert client.query("SELECT count() FROM k8s_expense_runs WHERE status = 'succeeded'").result_rows == [
            (len(TENANTS) * HOURS,)]


def test_a_locked_chdb_path_makes_the_job_wait_and_succeed_once_free(cluster, tmp_path):
    """The embedded ClickHouse is held by another process (a second worker by mistake): the consumer's
    first attempt cannot open it (transient: retried later), the next one after the path is free succeeds."""
    import subprocess
    import sys
    import textwrap

    ch_url = f"chdb://{tmp_path / 'locked'}"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from kubecost_worker.store.client import connect
        from kubecost_worker.store import migrations
        client = connect({ch_url!r}); migrations.migrate(client)
        print("open", flush=True); time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        config = load_config({"KCW_THANOS_URL": cluster.url, "KCW_CLICKHOUSE_URL": ch_url, "KCW_BROKER_URL": "memory://",
                              "KCW_QUEUE_PREFIX": f"t{uuid.uuid4().hex[:10]}", "KCW_RETRY_DELAYS_SECONDS": "1"})
        broker = Broker.from_config(config)
        handler = JobHandler(config, broker, lambda: wiring.build_pipeline(config))
        broker.publish(job())
        assert handler.handle(broker.get(broker.jobs)) == "retried"
    finally:
        holder.kill()
        holder.wait()
    assert drain(broker, handler) == {"done": 1}
    sink = handler.pipeline().sink
    try:
        assert compare_with_ground_truth(stored_rows(sink), truth_for(cluster, TENANTS[0], {START})).exact
    finally:
        sink.close()


def test_two_schedulers_by_mistake_only_duplicate_work(cluster, world_factory):
    world = world_factory(cluster.url)
    first, second = (Scheduler(world.pipeline, world.broker, clock=just_after_the_data) for _ in range(2))
    # both tick before either has recorded anything: every hour is enqueued twice
    jobs = first.due_jobs() + second.due_jobs()
    for j in jobs:
        world.broker.publish(j)
    assert sum(len(j.hour_starts) for j in jobs) == 2 * len(TENANTS) * HOURS
    assert drain(world.broker, world.handler) == {"done": len(jobs)}
    assert compare_with_ground_truth(stored_rows(world.sink), cluster.truth).exact
    assert world.sink.query("SELECT count() FROM (SELECT cloud_account_id, hour FROM k8s_expenses_current "
                            "GROUP BY 1, 2 HAVING uniqExact(run_id) != 1)") == [(0,)]
    # each hour's second run superseded its first; the scheduler's cleanup removes the first runs' rows
    assert world.sink.query("SELECT uniqExact(run_id) FROM k8s_expenses") == [(2 * len(TENANTS) * HOURS,)]
    first.clean_up()
    assert world.sink.query("SELECT uniqExact(run_id) FROM k8s_expenses") == [(len(TENANTS) * HOURS,)]
    assert compare_with_ground_truth(stored_rows(world.sink), cluster.truth).exact


def test_status_reports_last_complete_hour_gaps_and_failures(cluster, world_factory):
    from kubecost_worker.jobs.status import summarize

    world = world_factory(cluster.url)
    for hour in (START, START + 2 * 3600):
        world.pipeline.run_hour(TENANTS[0], hour)
    world.broker.publish(job(start=START + 3600, end=START + 7200))
    with FaultProxy(cluster.url) as proxy:
        proxy.default = Status(503, "down")
        world.pipeline.thanos = ThanosClient(ThanosSettings(proxy.url, retries=1))
        assert world.pipeline.run_hour(TENANTS[0], START + 3600).kind == "transient"
    line, total = summarize(world.sink.ledger_summary(TENANTS[0])).splitlines()
    gap = f"[{iso(START + 3600)}, {iso(START + 7200)})"
    assert line.startswith(f"{TENANTS[0]}: last complete hour {iso(START + 2 * 3600)}; 2 h done; missing 1 h {gap}; "
                           f"failing 1 h {gap} (")
    assert "503" in line and total.startswith("total: 1 tenants, 2 h done, 1 missing, 1 failing")
