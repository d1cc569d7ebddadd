"""Building the service's parts from a ``Config``, in one place: the CLI, the demo, tests and benchmarks call these
instead of putting a Thanos client, a sink and a pipeline together themselves.

- ``open_sink`` / ``thanos_client`` / ``build_pipeline``: the core (source -> model -> sink) for one config;
- ``apply_schema`` / ``require_migrated`` / ``readiness``: the schema a process needs before it works;
- ``build_worker``: broker + job handler (the consumer and the scheduler take them);
- ``read_api`` / ``start_api_thread``: the read API on clients of its own;
- ``serve_health``: ``/metrics``, ``/healthz`` and ``/readyz`` of a worker process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import structlog

from .config import Config
from .errors import ConfigError, WorkerError
from .pipeline import Pipeline
from .store import migrations
from .store.clickhouse import ClickHouseSink
from .source.thanos import ThanosClient, ThanosSettings

log = structlog.get_logger(__name__)


def open_sink(config: Config) -> ClickHouseSink:
    return ClickHouseSink.open(config.clickhouse_url, config.clickhouse_cluster)


def thanos_client(config: Config) -> ThanosClient:
    return ThanosClient(ThanosSettings.from_config(config))


def build_pipeline(config: Config, sink: ClickHouseSink | None = None) -> Pipeline:
    """The pipeline of ``config``: its Thanos, and ``sink`` or a sink opened on its ClickHouse."""
    return Pipeline(config, thanos_client(config), sink if sink is not None else open_sink(config))


def apply_schema(sink: ClickHouseSink, config: Config, resume: bool = False) -> list[str]:
    """What ``migrate`` does, and ``run`` at start-up: the pending migrations, then the daily tier's retention TTL
    (the hourly rows' retention is the scheduler's, ``cleanup.expire_hours``)."""
    applied = migrations.migrate(sink.client, resume=resume, cluster=config.clickhouse_cluster)
    migrations.apply_retention(sink.client, config.daily_retention_days, config.clickhouse_cluster)
    return applied


def require_migrated(sink: ClickHouseSink) -> None:
    if not migrations.is_up_to_date(sink.client):
        raise WorkerError("the schema is not up to date: run `kubecost-worker migrate` first")


def readiness(sink_of: Callable[[], ClickHouseSink]) -> Callable[[], bool]:
    """Ready: ClickHouse answers and every migration is applied (``sink_of`` may open the sink late)."""
    return lambda: migrations.is_up_to_date(sink_of().client)


@dataclass
class Worker:
    """What ``run``, ``consume`` and ``once`` share: the config, the broker and the job handler."""

    config: Config
    broker: Any
    handler: Any

    def pipeline(self) -> Pipeline:
        return self.handler.pipeline()


def build_worker(config: Config, eager: bool) -> Worker:
    """``eager``: open the pipeline now (``run``, ``once``); otherwise on the first job, so that a ClickHouse down
    at start-up is a transient error of that job, not a crash of the consumer."""
    from .jobs.broker import Broker
    from .jobs.consumer import JobHandler

    broker = Broker.from_config(config)
    pipeline = build_pipeline(config) if eager else None
    handler = JobHandler(config, broker, (lambda: pipeline) if eager else (lambda: build_pipeline(config)))
    return Worker(config, broker, handler)


def read_api(config: Config, sink: ClickHouseSink) -> Any:
    """The read API on clients of its own (one per request in flight: a streamed answer holds its client)."""
    from .api.app import create_app
    from .store.client import ReadClients

    return create_app(ReadClients(config.clickhouse_url), config.cluster_secret, ready=readiness(lambda: sink))


@dataclass(frozen=True)
class ApiThread:
    """The read API served by uvicorn in a thread of this process."""

    server: Any
    thread: Any

    @property
    def started(self) -> bool:
        return self.server.started

    def stop(self, timeout: float = 10.0) -> None:
        """Lets the requests in flight finish and waits for the server's shutdown, which closes its clients."""
        self.server.should_exit = True
        self.thread.join(timeout)


def start_api_thread(config: Config, sink: ClickHouseSink) -> ApiThread:
    """uvicorn in a thread beside the consumer (it installs no signal handlers off the main thread)."""
    import threading

    import uvicorn

    from .api.server import server_options

    server = uvicorn.Server(uvicorn.Config(read_api(config, sink), host=config.api_host, port=config.api_port,
                                           log_level="warning", access_log=False, **server_options()))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    log.info("serving the read API", host=config.api_host, port=config.api_port)
    return ApiThread(server, thread)


def serve_health(config: Config, ready: Callable[[], bool]) -> None:
    """/metrics, /healthz and /readyz of a worker process on KCW_METRICS_PORT (0 turns them off)."""
    from .telemetry import serve_health as serve

    if not config.metrics_port:
        return
    try:
        serve(config.api_host, config.metrics_port, ready)
    except OSError as exc:
        raise ConfigError([f"cannot serve /metrics on {config.api_host}:{config.metrics_port}: {exc.strerror} "
                           "(another worker on this host? set KCW_METRICS_PORT to a free port, or 0)"]) from exc
    log.info("serving /metrics, /healthz, /readyz", host=config.api_host, port=config.metrics_port)


def export_optscale(config: Config, sink: ClickHouseSink, tenants: list[str], start: int, end: int,
                    create_table: bool = False, reconciled: bool = False) -> list[Any]:
    """``export-optscale``: into KCW_OPTSCALE_TABLE on KCW_OPTSCALE_CLICKHOUSE_URL (default: the worker's own
    ClickHouse, the one client chDB allows); ``tenants`` empty: every tenant with runs in the window; ``reconciled``:
    the costs reconciled with the cloud bill."""
    from .read import optscale
    from .store.client import classified, connect

    separate = config.optscale_clickhouse_url not in (None, config.clickhouse_url)
    with classified(optscale.EXPORTING):
        target = connect(config.optscale_clickhouse_url) if separate else sink.client
        try:
            if create_table:
                optscale.create_table(target, config.optscale_table)
            else:
                optscale.create_leases_table(target, config.optscale_table)
            return [optscale.export_tenant(sink.client, target, config.optscale_table, tenant, start, end,
                                           reconciled=reconciled)
                    for tenant in tenants or optscale.tenants_in(sink.client, start, end)]
        finally:
            if separate:
                target.close()

