"""``jobs/`` through a real RabbitMQ, with the real CLI in subprocesses, a real Prometheus and real chDB.

Every test has its own queue prefix (``t<hex>``) and deletes its queues at the end. chDB opens a path in one
process at a time: a consumer's path is read here only after the consumer has exited, and two consumers
write two paths. The consumers log JSON (``KCW_LOG_FORMAT=json``) to a file; their progress is read there
(``tenant-hour done``) and in the queue depths RabbitMQ reports.
"""

from __future__ import annotations

import bz2
import datetime as dt
import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable

import kombu
import pytest

from kubecost_worker.devtools.accuracy import compare_with_ground_truth, stored_rows
from kubecost_worker.jobs.broker import ATTEMPTS, DEAD_LETTER_BYTES, ERROR, ERROR_KIND, TRUNCATED, Broker, body_of
from kubecost_worker.jobs.messages import Job
from kubecost_worker.store.clickhouse import ClickHouseSink

from .helpers import WORKER, Cluster, bad_job_messages, ch_client, iso, run_worker
from .faultproxy import STALL, FaultProxy, Rewrite, Slow, Status
from .tcprelay import TcpRelay

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus, pytest.mark.needs_rabbitmq, pytest.mark.timeout(180)]

RABBIT_HOST, RABBIT_PORT = "127.0.0.1", 5672
BROKER = f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}//"
TENANTS = ["rmq-tenant-a", "rmq-tenant-b"]
HOUR = 3600
HOURS = 12
END = int(time.time()) // HOUR * HOUR
START = END - HOURS * HOUR
RETRY_DELAYS = (1, 2)  # growing: each retry waits in its own TTL queue
HOSTILE = 'a"} or {tenant_id=~".+'


# -- fixtures and helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def rabbitmq():
    conn = kombu.Connection(BROKER, connect_timeout=5)
    try:
        conn.connect()
    except Exception as exc:  # noqa: BLE001 (any failure means the same: no broker)
        pytest.fail(f"RabbitMQ is not reachable at {RABBIT_HOST}:{RABBIT_PORT} as guest/guest ({exc!r}); "
                    "start it with `rabbitmq-server -detached`", pytrace=False)
    finally:
        conn.release()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("rabbitmq"), TENANTS, START, HOURS, pods=10, seed=7)
    yield c
    c.prometheus.stop()


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1,
               diagnostics: Callable[[], str] = lambda: "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{diagnostics()}")
        time.sleep(interval)


def hour_of(iso_hour: str) -> int:
    return int(dt.datetime.fromisoformat(iso_hour).timestamp())


class Worker:
    """A ``kubecost-worker`` subprocess with its stdout and JSON log in files."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path):
        self.name = name
        self.out = logdir / f"{name}.out"
        self.err = logdir / f"{name}.err"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("KCW_")}
        full_env.update(env, PYTHONUNBUFFERED="1")
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.popen = subprocess.Popen([str(WORKER), *args], env=full_env, stdout=out, stderr=err)
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def events(self, event: str | None = None) -> list[dict]:
        out = []
        for line in self.err.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                out.append(record)
        return out

    def done(self) -> list[tuple[str, int]]:
        return [(r["tenant"], hour_of(r["hour"])) for r in self.events("tenant-hour done")]

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout} s\n{self.tail()}") from None

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then the exit status (it must come within ``timeout``)."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def tail(self, lines: int = 25) -> str:
        err = self.err.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} stdout:\n{self.stdout()[-2000:]}\n--- {self.name} stderr:\n" + "\n".join(err)


class Rig:
    """One test's queues (own prefix, deleted at the end) and subprocesses (killed at the end)."""

    def __init__(self, cluster: Cluster, tmp_path: Path):
        self.cluster = cluster
        self.tmp_path = tmp_path
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        self.broker = Broker(BROKER, self.prefix, RETRY_DELAYS)  # direct to RabbitMQ, never through a relay
        self.broker.declare()
        self.workers: list[Worker] = []

    @property
    def jobs(self) -> str:
        return f"{self.prefix}.jobs"

    @property
    def dead(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def delay_queues(self) -> list[str]:
        return [f"{self.prefix}.delay.{s}s" for s in RETRY_DELAYS]

    def ch_url(self, name: str) -> str:
        return f"chdb://{self.tmp_path / name}"

    def env(self, ch_url: str, broker_url: str = BROKER, thanos_url: str | None = None, **settings: str) -> dict:
        return {"KCW_THANOS_URL": thanos_url or self.cluster.url, "KCW_CLICKHOUSE_URL": ch_url,
                "KCW_BROKER_URL": broker_url, "KCW_QUEUE_PREFIX": self.prefix, "KCW_LAG_MINUTES": "0",
                "KCW_RETRY_DELAYS_SECONDS": ",".join(map(str, RETRY_DELAYS)), "KCW_MAX_RETRIES": "2",
                "KCW_LOG_FORMAT": "json", "KCW_METRICS_PORT": "0", **settings}

    def cli(self, *args: str, ch_url: str | None = None, timeout: float = 60, **settings: str):
        return run_worker(*args, env=self.env(ch_url or self.ch_url("unused"), **settings), timeout=timeout)

    def migrate(self, *ch_urls: str) -> None:
        """Migrate chDB paths in parallel (one process per path)."""
        procs = [(url, subprocess.Popen([str(WORKER), "migrate"], env={
            **{k: v for k, v in os.environ.items() if not k.startswith("KCW_")}, "KCW_CLICKHOUSE_URL": url},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for url in ch_urls]
        for url, proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, f"migrate {url} failed: {out} {err[-1000:]}"

    def consumer(self, name: str, env: dict[str, str]) -> Worker:
        worker = Worker(name, ["consume"], env, self.tmp_path)
        self.workers.append(worker)
        return worker

    def depth(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) of a queue, as RabbitMQ reports them (passive declare)."""
        with kombu.Connection(BROKER, connect_timeout=5) as conn:
            ok = conn.default_channel.queue_declare(queue=queue, passive=True)
            return ok.message_count, ok.consumer_count

    def ready(self, queue: str) -> int:
        return self.depth(queue)[0]

    def wait_consumers(self, count: int, timeout: float = 30) -> None:
        wait_until(lambda: self.depth(self.jobs)[1] == count, timeout, f"{count} consumers on {self.jobs}",
                   diagnostics=self.tails)

    def tails(self) -> str:
        return "\n".join(w.tail() for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.broker.close()
        with kombu.Connection(BROKER, connect_timeout=5) as conn:
            for queue in (self.jobs, self.dead, *self.delay_queues):
                channel = conn.channel()
                try:
                    channel.queue_delete(queue)
                except Exception:  # noqa: BLE001 (already gone: nothing to clean)
                    pass
                finally:
                    try:
                        channel.close()
                    except Exception:  # noqa: BLE001
                        pass


@pytest.fixture
def rig(cluster, tmp_path):
    r = Rig(cluster, tmp_path)
    try:
        yield r
    finally:
        r.close()


def job(tenant: str = TENANTS[0], start: int = START, hours: int = 1, reason: str = "rerun") -> Job:
    return Job(tenant, start, start + hours * HOUR, reason, int(time.time()))


def truth_for(cluster: Cluster, pairs: set[tuple[str, int]]) -> list[dict]:
    return [r for r in cluster.truth if (r["cloud_account_id"], r["hour"]) in pairs]


class Store:
    """What one chDB path holds, read once after its writer exited."""

    def __init__(self, ch_url: str):
        with ch_client(ch_url) as client:
            sink = ClickHouseSink(client)
            self.succeeded: list[tuple[str, int]] = [
                (t, int(h)) for t, h in sink.query("SELECT cloud_account_id, toUnixTimestamp(hour) "
                                                   "FROM k8s_expense_runs WHERE status = 'succeeded'")]
            self.rows = stored_rows(sink)
            self.cost = {(t, int(h)): c for t, h, c in sink.query(
                "SELECT cloud_account_id, toUnixTimestamp(hour), sum(total_cost) FROM k8s_expenses_current "
                "GROUP BY cloud_account_id, hour")}


def assert_exact(rows: list[dict], truth: list[dict]) -> None:
    accuracy = compare_with_ground_truth(rows, truth)
    assert accuracy.exact, f"missing {accuracy.missing[:5]}, unexpected {accuracy.unexpected[:5]}"
    assert accuracy.compared == len(truth) and accuracy.max_rel_error < 1e-9, accuracy


# -- 1. reruns -----------------------------------------------------------------------------------------------


def test_rerun_publishes_a_range_and_a_consumer_processes_its_hours_exactly(rig, cluster):
    ch = rig.ch_url("ch")
    rig.migrate(ch)
    tenant = TENANTS[0]
    result = rig.cli("rerun", "--tenant", tenant, "--start", iso(START), "--end", iso(START + 3 * HOUR))
    assert result.returncode == 0, result.stderr
    assert "published 1 job for 3 tenant-hours" in result.stdout
    assert rig.ready(rig.jobs) == 1

    invalid = {
        "not on an hour": ("--tenant", tenant, "--start", iso(START + 60), "--end", iso(START + 3 * HOUR)),
        "start >= end": ("--tenant", tenant, "--start", iso(START + HOUR), "--end", iso(START + HOUR)),
        "start > end": ("--tenant", tenant, "--start", iso(START + 2 * HOUR), "--end", iso(START)),
        "hostile tenant": ("--tenant", HOSTILE, "--start", iso(START), "--end", iso(START + HOUR)),
        "one hostile among good": ("--tenant", tenant, "--tenant", HOSTILE, "--start", iso(START),
                                   "--end", iso(START + HOUR)),
        "longer than max": ("--tenant", tenant, "--start", iso(START), "--end", iso(START + 5 * HOUR)),
    }
    expected_reason = {"not on an hour": "hour boundary", "start >= end": "start must be before end",
                       "start > end": "start must be before end", "hostile tenant": "safe alphabet",
                       "one hostile among good": "safe alphabet", "longer than max": "KCW_MAX_RERUN_HOURS"}
    for case, args in invalid.items():
        bad = rig.cli("rerun", *args, KCW_MAX_RERUN_HOURS="4")
        assert bad.returncode == 2, (case, bad.returncode, bad.stdout, bad.stderr)
        assert expected_reason[case] in bad.stderr and bad.stderr.count("\n") == 1, (case, bad.stderr)
        assert "published" not in bad.stdout, case
    assert rig.depth(rig.jobs) == (1, 0)  # nothing more was published
    assert rig.ready(rig.dead) == 0

    consumer = rig.consumer("consumer", rig.env(ch))
    wait_until(lambda: len(consumer.done()) >= 3, 60, "3 tenant-hours done", diagnostics=consumer.tail)
    wait_until(lambda: rig.ready(rig.jobs) == 0, 10, "an empty job queue")
    stopped = time.monotonic()
    assert consumer.stop(timeout=10) == 0, consumer.tail()
    assert time.monotonic() - stopped < 5, "an idle consumer should stop within a couple of seconds"
    assert "consume: stopped; {'done': 1}" in consumer.stdout()  # one job of three hours, one batch
    assert rig.depth(rig.jobs) == (0, 0) and rig.ready(rig.dead) == 0

    hours = {(tenant, START + i * HOUR) for i in range(3)}
    store = Store(ch)
    assert sorted(store.succeeded) == sorted(hours)
    assert_exact(store.rows, truth_for(cluster, hours))


# -- 2. two consumers ---------------------------------------------------------------------------------------


def _log_time(record: dict) -> float:
    return dt.datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()


def _consume_all(rig: Rig, consumers: int) -> tuple[float, float, list[Worker], list[str]]:
    """Start ``consumers`` consumers on their own paths, publish 24 jobs with ``rerun``, wait until all are done.
    Returns (seconds from the start of ``rerun`` to the last done, seconds from ``rerun``'s exit, workers, paths)."""
    paths = [rig.ch_url(f"ch{i}") for i in range(consumers)]
    rig.migrate(*paths)
    workers = [rig.consumer(f"consumer{i}", rig.env(path)) for i, path in enumerate(paths)]
    rig.wait_consumers(consumers)
    args = [a for t in TENANTS for a in ("--tenant", t)]
    began = time.monotonic()
    result = rig.cli("rerun", *args, "--start", iso(START), "--end", iso(END))
    published = time.monotonic()
    assert result.returncode == 0, result.stderr
    assert f"published {len(TENANTS)} jobs for {len(TENANTS) * HOURS} tenant-hours" in result.stdout
    total = len(TENANTS) * HOURS
    wait_until(lambda: sum(len(w.done()) for w in workers) >= total, 90, f"{total} tenant-hours done",
               interval=0.05, diagnostics=rig.tails)
    finished = time.monotonic()
    wait_until(lambda: rig.ready(rig.jobs) == 0, 10, "an empty job queue")
    for worker in workers:
        assert worker.stop(timeout=15) == 0, worker.tail()
    assert rig.depth(rig.jobs) == (0, 0) and rig.ready(rig.dead) == 0
    return finished - began, finished - published, workers, paths


def _report(consumers: int, seconds: float, after_publish: float, workers: list[Worker]) -> None:
    jobs = len(TENANTS) * HOURS
    done = sorted(_log_time(r) for w in workers for r in w.events("tenant-hour done"))
    steady = (len(done) - 1) / (done[-1] - done[0]) * 60 if done[-1] > done[0] else float("nan")
    print(f"\n[throughput] {consumers} consumer(s): {jobs} tenant-hours in {seconds:.2f} s from the start of `rerun` "
          f"= {jobs / seconds * 60:.0f} tenant-hours/min; {after_publish:.2f} s after `rerun` exited = "
          f"{jobs / after_publish * 60:.0f}/min; first to last done (log time stamps) {done[-1] - done[0]:.2f} s "
          f"= {steady:.0f}/min; jobs per consumer {[len(w.done()) for w in workers]}")


def test_two_consumers_share_the_work_each_hour_once_and_match_a_single_process_backfill(rig, cluster):
    seconds, after_publish, workers, paths = _consume_all(rig, 2)
    _report(2, seconds, after_publish, workers)
    stores = [Store(path) for path in paths]

    everything = {(t, START + i * HOUR) for t in TENANTS for i in range(HOURS)}
    succeeded = Counter(pair for store in stores for pair in store.succeeded)
    assert set(succeeded) == everything and set(succeeded.values()) == {1}, succeeded
    assert all(store.succeeded for store in stores), "both consumers should have done some work"
    assert [len(w.done()) for w in workers] == [len(s.succeeded) for s in stores]

    combined: dict[tuple[str, int], float] = {}
    for store in stores:
        assert not combined.keys() & store.cost.keys()
        combined.update(store.cost)
    assert_exact([row for store in stores for row in store.rows], cluster.truth)

    single = rig.ch_url("single")
    rig.migrate(single)
    result = rig.cli("backfill", "--start", iso(START), "--end", iso(END), *[a for t in TENANTS for a in ("--tenant", t)],
                     ch_url=single, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    reference = Store(single).cost
    assert reference.keys() == combined.keys() == everything
    for pair, cost in reference.items():
        assert combined[pair] == pytest.approx(cost, rel=1e-9, abs=1e-12), pair


def test_one_consumer_for_comparison(rig, cluster):
    seconds, after_publish, workers, paths = _consume_all(rig, 1)
    _report(1, seconds, after_publish, workers)
    store = Store(paths[0])
    assert sorted(store.succeeded) == sorted((t, START + i * HOUR) for t in TENANTS for i in range(HOURS))
    assert_exact(store.rows, cluster.truth)


# -- retries through the TTL delay queues --------------------------------------------------------------------


def test_transient_failures_wait_in_the_delay_queues_then_succeed_or_are_dead_lettered(rig, cluster):
    ch = rig.ch_url("ch")
    rig.migrate(ch)
    unavailable = Status(503, {"status": "error", "errorType": "unavailable", "error": "store down"})
    with FaultProxy(cluster.url) as thanos:
        thanos.script(unavailable, unavailable)  # the job's first two attempts fail, the third passes
        consumer = rig.consumer("consumer", rig.env(ch, thanos_url=thanos.url, KCW_THANOS_RETRIES="1"))
        rig.wait_consumers(1)
        published = time.monotonic()
        rig.broker.publish(job(TENANTS[0], START))
        wait_until(consumer.done, 30, "the retried job done", diagnostics=consumer.tail)
        took = time.monotonic() - published
        assert [r["delay_seconds"] for r in consumer.events("job failed, retrying later")] == [1, 2]
        assert took >= 3, took  # 1 s in <prefix>.delay.1s, then 2 s in <prefix>.delay.2s
        assert thanos.count > 3  # two attempts stopped at their first request, then the whole fetch

        thanos.default = unavailable  # a fault that does not clear: dead-lettered after KCW_MAX_RETRIES=2
        rig.broker.publish(job(TENANTS[1], START))
        wait_until(lambda: rig.ready(rig.dead) == 1, 30, "the failing job dead-lettered", diagnostics=consumer.tail)
        assert consumer.stop() == 0, consumer.tail()
    assert rig.depth(rig.jobs) == (0, 0) and all(rig.ready(q) == 0 for q in rig.delay_queues)
    message = rig.broker.get(rig.broker.dead)
    body = body_of(message)
    assert json.loads(body)["cloud_account_id"] == TENANTS[1]
    headers = message.headers
    assert headers[ERROR_KIND] == "transient" and headers[ATTEMPTS] == 2 and "503" in headers[ERROR], headers
    message.requeue()
    store = Store(ch)
    assert store.succeeded == [(TENANTS[0], START)]
    assert_exact(store.rows, truth_for(cluster, {(TENANTS[0], START)}))


# -- 3. bad messages, dlq list and replay --------------------------------------------------------------------


def test_bad_messages_are_dead_lettered_with_their_reason_then_listed_and_replayed(rig, cluster):
    ch = rig.ch_url("ch")
    rig.migrate(ch)
    good = json.loads(job().to_json())
    bad = bad_job_messages(good, max_rerun_hours=24)
    for body in bad:
        rig.broker.publish_raw(body)
    rig.broker.publish(job())
    assert rig.ready(rig.jobs) == len(bad) + 1

    consumer = rig.consumer("consumer", rig.env(ch, KCW_MAX_RERUN_HOURS="24"))
    wait_until(lambda: consumer.done(), 60, "the good job done", diagnostics=consumer.tail)
    wait_until(lambda: rig.ready(rig.dead) == len(bad), 10, f"{len(bad)} dead letters", diagnostics=consumer.tail)
    assert consumer.stop() == 0, consumer.tail()
    assert rig.depth(rig.jobs) == (0, 0)
    assert consumer.done() == [(TENANTS[0], START)]
    assert len(consumer.events("job dead-lettered")) == len(bad)
    assert Store(ch).succeeded == [(TENANTS[0], START)]

    # the dead letters, in order, each with its reason; then back into the queue
    taken = []
    while (message := rig.broker.get(rig.broker.dead)) is not None:
        taken.append(message)
    try:
        bodies = [body_of(m) for m in taken]
        assert bodies == list(bad)
        for message, reason in zip(taken, bad.values()):
            headers = message.headers
            assert reason in headers[ERROR] and headers[ERROR_KIND] == "invalid" and headers[ATTEMPTS] == 0, headers
    finally:
        for message in taken:
            message.requeue()
    wait_until(lambda: rig.ready(rig.dead) == len(bad), 5, "the dead letters back in their queue")

    listed = rig.cli("dlq", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == len(bad), listed.stdout
    for reason in bad.values():
        assert any(" invalid attempts=0 " in line and reason in line for line in lines), (reason, listed.stdout)
    assert rig.ready(rig.dead) == len(bad)  # listing leaves them where they are
    assert rig.ready(rig.jobs) == 0

    replayed = rig.cli("dlq", "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert f"dlq replay: {len(bad)} messages back in {rig.jobs}" in replayed.stdout
    assert rig.ready(rig.dead) == 0
    assert rig.ready(rig.jobs) == len(bad)
    again = rig.cli("dlq", "list")
    assert again.returncode == 0 and again.stdout.strip() == "dlq: empty", again.stdout


# -- 4. connection loss --------------------------------------------------------------------------------------


def test_consumer_reconnects_after_its_connections_are_cut_and_every_hour_ends_exact(rig, cluster, tmp_path):
    ch = rig.ch_url("ch")
    rig.migrate(ch)
    tenant = TENANTS[0]
    hours = {(tenant, START + i * HOUR) for i in range(HOURS)}

    def slowly(body: dict) -> dict:  # each tenant-hour takes >= 0.25 s: the cuts land while a job is in flight
        time.sleep(0.25)
        return body

    with TcpRelay(RABBIT_HOST, RABBIT_PORT) as relay, FaultProxy(cluster.url) as thanos:
        thanos.default = Rewrite(slowly)
        for hour in sorted(h for _, h in hours):
            rig.broker.publish(job(tenant, hour))  # straight to RabbitMQ
        assert rig.ready(rig.jobs) == HOURS
        via_relay = f"amqp://guest:guest@127.0.0.1:{relay.port}//"
        consumer = rig.consumer("consumer", rig.env(ch, broker_url=via_relay, thanos_url=thanos.url))

        cuts = 0
        for after in (2, 5, 8):
            wait_until(lambda: len(consumer.done()) >= after, 60, f"{after} tenant-hours done",
                       interval=0.02, diagnostics=consumer.tail)
            time.sleep(0.15)  # the next job is now waiting on Thanos
            accepted = relay.accepted
            cut = relay.cut()
            assert cut >= 1, "the consumer had no connection through the relay"
            cuts += 1
            wait_until(lambda: relay.accepted > accepted and relay.active >= 1, 30, "the consumer reconnecting",
                       diagnostics=consumer.tail)
        wait_until(lambda: {p for p in consumer.done()} >= hours and rig.ready(rig.jobs) == 0, 90,
                   "every hour done and the job queue empty", diagnostics=consumer.tail)
        assert consumer.popen.poll() is None, consumer.tail()
        assert consumer.stop(timeout=15) == 0, consumer.tail()

    assert cuts == 3 and relay.accepted >= 4
    assert len(consumer.events("connected to the broker")) >= 4
    assert rig.ready(rig.jobs) == 0 and rig.ready(rig.dead) == 0
    assert all(rig.ready(q) == 0 for q in rig.delay_queues)
    store = Store(ch)
    assert set(store.succeeded) == hours  # at least once each (a job acked on a cut connection runs again)
    print(f"\n[reconnect] {cuts} cuts, {relay.accepted} connections, {len(store.succeeded)} successful runs "
          f"for {len(hours)} hours")
    assert_exact(store.rows, truth_for(cluster, hours))


# -- 5. SIGTERM ----------------------------------------------------------------------------------------------


def test_sigterm_during_a_stalled_job_finishes_and_acks_it_then_exits_0(rig, cluster):
    ch = rig.ch_url("ch")
    rig.migrate(ch)
    grace = 20
    with FaultProxy(cluster.url, stall_seconds=3) as thanos:
        thanos.script(STALL)  # the first request hangs 3 s then is reset; the retry passes
        rig.broker.publish(job())
        consumer = rig.consumer("consumer", rig.env(ch, thanos_url=thanos.url, KCW_SHUTDOWN_GRACE_SECONDS=str(grace),
                                                    KCW_THANOS_TIMEOUT_SECONDS="10"))
        wait_until(lambda: thanos.count >= 1, 30, "the job's Thanos request", diagnostics=consumer.tail)
        time.sleep(0.3)
        signalled = time.monotonic()
        consumer.signal(signal.SIGTERM)
        rc = consumer.wait(grace + 5)
        took = time.monotonic() - signalled
        assert thanos.count >= 2  # the stalled request was retried after the signal
    assert rc == 0, consumer.tail()
    assert 1.5 < took < grace, took  # it waited for the job (the stall had ~2.7 s left), not for the grace period
    assert consumer.events("stopping: finishing the current job")
    assert consumer.done() == [(TENANTS[0], START)]
    assert "consume: stopped; {'done': 1}" in consumer.stdout()
    assert rig.depth(rig.jobs) == (0, 0) and rig.ready(rig.dead) == 0
    store = Store(ch)
    assert store.succeeded == [(TENANTS[0], START)]
    assert_exact(store.rows, truth_for(cluster, {(TENANTS[0], START)}))


def test_sigterm_past_the_grace_period_exits_non_zero_and_the_job_goes_back_to_the_queue(rig, cluster):
    ch = rig.ch_url("ch")
    rig.migrate(ch)
    with FaultProxy(cluster.url, stall_seconds=6) as thanos:
        thanos.script(STALL)
        rig.broker.publish(job())
        consumer = rig.consumer("consumer", rig.env(ch, thanos_url=thanos.url, KCW_SHUTDOWN_GRACE_SECONDS="1",
                                                    KCW_THANOS_TIMEOUT_SECONDS="20"))
        wait_until(lambda: thanos.count >= 1, 30, "the job's Thanos request", diagnostics=consumer.tail)
        wait_until(lambda: rig.depth(rig.jobs) == (0, 1), 5, "the job taken (unacked)")
        time.sleep(0.3)
        signalled = time.monotonic()
        consumer.signal(signal.SIGTERM)
        rc = consumer.wait(10)
        took = time.monotonic() - signalled
        assert thanos.count == 1
    assert rc != 0, consumer.tail()
    assert rc == 128 + signal.SIGTERM, rc
    assert took < 2.5, took
    assert consumer.events("grace period over: exiting without acking the current job")
    assert consumer.done() == []
    wait_until(lambda: rig.depth(rig.jobs) == (1, 0), 10, "the unacked job back in the queue")
    assert rig.ready(rig.dead) == 0
    assert Store(ch).succeeded == []


# -- 5. hostile bodies and long jobs (each once stopped a consumer) --------------------------------------------


def test_compressed_and_oversized_bodies_are_dead_lettered_unread_and_the_consumer_goes_on(rig, cluster):
    """kombu decompresses a body whose headers name a compression before any consumer code runs: a 177-byte
    bz2 body became 200 MB, its dead letter was refused and the consumer reconnected forever; garbage with the
    header was acked and dropped. Refused unread now, dead-lettered as sent (an oversized one as an excerpt)."""
    ch = rig.ch_url("ch")
    rig.migrate(ch)
    bomb = bz2.compress(b" " * 50_000_000)
    garbage = b"\x00not bz2 at all"
    oversized = json.dumps({"padding": "x" * 100_000}).encode()
    rig.broker.publish_raw(bomb, {"compression": "application/x-bz2"})
    rig.broker.publish_raw(garbage, {"compression": "application/x-bz2"})
    rig.broker.publish_raw(oversized)
    rig.broker.publish(job())

    consumer = rig.consumer("consumer", rig.env(ch))
    wait_until(lambda: consumer.done(), 60, "the good job done", diagnostics=consumer.tail)
    wait_until(lambda: rig.ready(rig.dead) == 3, 10, "3 dead letters", diagnostics=consumer.tail)
    assert consumer.stop() == 0, consumer.tail()
    assert rig.depth(rig.jobs) == (0, 0)
    assert consumer.done() == [(TENANTS[0], START)]
    dead = []
    while (message := rig.broker.get(rig.broker.dead)) is not None:
        dead.append((message.headers, body_of(message)))
        message.ack()
    assert [body for _, body in dead] == [bomb, garbage, oversized[:DEAD_LETTER_BYTES]]
    for headers, _ in dead[:2]:
        assert headers[ERROR_KIND] == "invalid"
        assert headers[ERROR] == "compressed body (application/x-bz2) refused unread", headers
    assert "larger than 4096" in dead[2][0][ERROR] and dead[2][0][TRUNCATED] == len(oversized)


def test_a_job_longer_than_two_heartbeats_is_acked_once(rig, cluster):
    """RabbitMQ drops a connection that misses two heartbeats; a job running inside on_message used to send
    none, so its ack was lost and the job started again forever. Here a slow Thanos makes one tenant-hour take
    about 4 heartbeats (5 s each, the least the worker accepts; RabbitMQ gives up after 2): it is done once, acked
    once, and the connection never drops."""
    ch = rig.ch_url("ch")
    rig.migrate(ch)
    with FaultProxy(cluster.url) as slow:
        slow.default = Slow(1.0)
        rig.broker.publish(job())
        consumer = rig.consumer("consumer", rig.env(ch, thanos_url=slow.url, KCW_BROKER_HEARTBEAT_SECONDS="5",
                                                    KCW_THANOS_PARALLEL_QUERIES="1"))
        wait_until(lambda: consumer.done(), 120, "the slow job done", diagnostics=consumer.tail)
        took = time.monotonic() - consumer.started
        time.sleep(12)  # two heartbeats more: a lost ack would have the job back by now
        assert consumer.stop() == 0, consumer.tail()
    assert took > 12, took  # past RabbitMQ's 10 s without a heartbeat
    assert consumer.done() == [(TENANTS[0], START)]
    assert len(consumer.events("connected to the broker")) == 1, consumer.tail()
    assert rig.depth(rig.jobs) == (0, 0) and rig.ready(rig.dead) == 0
    assert Store(ch).succeeded == [(TENANTS[0], START)]


def test_a_range_is_split_into_hours_each_acked_alone(rig, cluster):
    """RabbitMQ closes the channel of a message unacked for 30 minutes (consumer_timeout): a month's rerun of a
    large tenant as one message would start again forever. A range becomes jobs of at most KCW_BATCH_HOURS hours
    (here 1: one job per hour)."""
    ch = rig.ch_url("ch")
    rig.migrate(ch)
    rig.broker.publish(job(hours=3))
    consumer = rig.consumer("consumer", rig.env(ch, KCW_BATCH_HOURS="1"))
    wait_until(lambda: len(consumer.done()) == 3, 60, "3 hours done", diagnostics=consumer.tail)
    assert consumer.stop() == 0, consumer.tail()
    assert sorted(consumer.done()) == [(TENANTS[0], START + i * HOUR) for i in range(3)]
    assert len(consumer.events("job split into hours")) == 2  # the first hour, then the rest split again
    assert rig.depth(rig.jobs) == (0, 0)
