"""``wiring.py``: the service's parts built from a ``Config`` on real components (chDB, kombu's ``memory://``
transport, uvicorn on loopback): the pipeline on the config's Thanos and ClickHouse, the schema a process needs
before it works, the worker opening its pipeline now or on the first job, the read API beside it, the health
server's port. What the parts then do is tested with their modules; the commands that call these: ``test_cli.py``."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
import requests

from kubecost_worker import wiring
from kubecost_worker.config import load_config
from kubecost_worker.devtools.localprom import free_port
from kubecost_worker.errors import ConfigError, TransientError, WorkerError
from kubecost_worker.store import migrations


def config_for(ch_url: str, **settings: str):
    return load_config({"KCW_THANOS_URL": "http://127.0.0.1:9", "KCW_CLICKHOUSE_URL": ch_url,
                        "KCW_BROKER_URL": "memory://", "KCW_QUEUE_PREFIX": f"t{uuid.uuid4().hex[:10]}", **settings})


@pytest.mark.needs_chdb
def test_the_pipeline_reads_the_configs_thanos_and_writes_the_given_sink_or_its_own(ch_url):
    config = config_for(ch_url, KCW_THANOS_TIMEOUT_SECONDS="7", KCW_THANOS_RETRIES="2")
    sink = wiring.open_sink(config)
    try:
        pipeline = wiring.build_pipeline(config, sink)
        assert pipeline.sink is sink and pipeline.config is config
        settings = pipeline.thanos.settings
        assert (settings.url, settings.timeout_seconds, settings.retries) == ("http://127.0.0.1:9", 7.0, 2)
        assert wiring.thanos_client(config).settings == settings
    finally:
        sink.close()
    own = wiring.build_pipeline(config).sink  # none given: one opened on KCW_CLICKHOUSE_URL
    try:
        assert own.query("SELECT 1") == [(1,)]
    finally:
        own.close()


@pytest.mark.needs_chdb
def test_apply_schema_brings_the_store_up_to_date_once_and_readiness_follows(ch_url):
    config = config_for(ch_url, KCW_RETENTION_DAYS="30", KCW_DAILY_RETENTION_DAYS="1000")
    sink = wiring.open_sink(config)
    try:
        ready = wiring.readiness(lambda: sink)
        assert not ready()
        with pytest.raises(WorkerError, match="run `kubecost-worker migrate` first"):
            wiring.require_migrated(sink)
        applied = wiring.apply_schema(sink, config)
        assert applied == [f"{m.version:04d}_{m.name}" for m in migrations.load_migrations(migrations.migrations_dir())]
        assert wiring.apply_schema(sink, config) == []  # nothing pending: nothing applied twice
        wiring.require_migrated(sink)
        assert ready()
        ttls = dict(sink.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
                               "AND name IN ('k8s_expenses', 'k8s_expenses_by_day')"))
        assert "TTL day + toIntervalDay(1000)" in ttls["k8s_expenses_by_day"]  # KCW_DAILY_RETENTION_DAYS
        assert " TTL " not in ttls["k8s_expenses"]  # KCW_RETENTION_DAYS: the scheduler's (cleanup.expire_hours)
    finally:
        sink.close()


@pytest.mark.needs_chdb
def test_an_eager_worker_opens_its_pipeline_now_and_keeps_it(ch_url):
    config = config_for(ch_url)
    worker = wiring.build_worker(config, eager=True)
    try:
        pipeline = worker.pipeline()
        assert pipeline is worker.handler.pipeline() and pipeline.config is config
        assert worker.broker is worker.handler.broker and worker.broker.jobs.name == f"{config.queue_prefix}.jobs"
        assert pipeline.sink.query("SELECT 1") == [(1,)]
    finally:
        worker.pipeline().sink.close()
        worker.broker.close()


def test_a_lazy_worker_starts_without_clickhouse_and_its_first_job_finds_it_down():
    """``consume``: a ClickHouse down at start-up is a transient error of the first job, not a failed start."""
    config = config_for(f"http://default:@127.0.0.1:{free_port()}/default")
    worker = wiring.build_worker(config, eager=False)
    try:
        with pytest.raises(TransientError):
            worker.pipeline()
    finally:
        worker.broker.close()


@pytest.mark.needs_chdb
def test_the_read_api_thread_serves_the_store_and_its_readiness(ch_url):
    port = free_port()
    config = config_for(ch_url, KCW_API_PORT=str(port), KCW_CLUSTER_SECRET="wiring-secret")
    sink = wiring.open_sink(config)
    api = None
    try:
        wiring.apply_schema(sink, config)
        api = wiring.start_api_thread(config, sink)
        deadline = time.monotonic() + 30
        while not api.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
        answer = requests.get(f"{base}/metroculus/v2/kubecost_cluster_costs", headers={"Secret": "wiring-secret"},
                              params={"cloud_account_id": "nobody", "start_date": 0, "end_date": 3600}, timeout=10)
        assert answer.status_code == 200 and answer.json()["total_cost"] == 0
        assert requests.get(f"{base}/metroculus/v2/kubecost_cluster_costs", timeout=10).status_code == 401
    finally:
        if api is not None:
            api.stop()
        sink.close()
    # stopped, the API let go of its clients: this process opens another embedded store
    assert not api.thread.is_alive()
    other = wiring.open_sink(config_for(ch_url + "-other"))
    other.close()


def test_the_health_server_is_off_at_port_0_and_a_taken_port_is_a_configuration_error():
    assert wiring.serve_health(load_config({"KCW_METRICS_PORT": "0"}), lambda: True) is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot serve /metrics on 127.0.0.1:{port}"):
            wiring.serve_health(load_config({"KCW_METRICS_PORT": str(port)}), lambda: True)
