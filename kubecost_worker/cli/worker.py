"""The long-running processes: ``run`` (everything in one), ``consume``, ``schedule``, ``once``, ``serve``."""

from __future__ import annotations

import click
import structlog

from .. import wiring
from ..errors import TransientError, WorkerError
from .base import cli, config_of, require_shared_broker, shared_broker

log = structlog.get_logger(__name__)


@cli.command()
@click.pass_context
def consume(ctx: click.Context) -> None:
    """Process jobs from the queue until SIGTERM (reconnects after broker restarts)."""
    from ..jobs.consumer import JobConsumer, stop_gracefully

    config = config_of(ctx, "KCW_THANOS_URL")
    require_shared_broker(config, "consume")
    worker = wiring.build_worker(config, eager=False)
    consumer = JobConsumer(worker.broker, worker.handler, config.prefetch)
    stop_gracefully(consumer, config.shutdown_grace_seconds)
    wiring.serve_health(config, wiring.readiness(lambda: worker.pipeline().sink))
    try:  # an unmigrated schema would fail every job: refuse to start, as backfill does
        wiring.require_migrated(worker.pipeline().sink)
    except TransientError as exc:  # ClickHouse not up yet: the first job finds out, and is retried
        log.warning("ClickHouse unavailable at start-up; consuming anyway", error=str(exc))
    log.info("consuming", queue=worker.broker.jobs.name, prefetch=config.prefetch)
    consumer.run()
    click.echo(f"consume: stopped; {dict(worker.handler.outcomes)}")


@cli.command()
@click.option("--serve", is_flag=True, help="Also serve the read API (an embedded chDB path opens in one process).")
@click.pass_context
def run(ctx: click.Context, serve: bool) -> None:
    """Scheduler and consumer in one process (the embedded mode: chDB and memory:// need it)."""
    from ..jobs.consumer import JobConsumer, stop_gracefully
    from ..jobs.scheduler import Scheduler, tick_flag

    config = config_of(ctx, "KCW_THANOS_URL", *(["KCW_CLUSTER_SECRET"] if serve else []))
    worker = wiring.build_worker(config, eager=True)
    pipeline = worker.pipeline()
    wiring.apply_schema(pipeline.sink, config)
    api = wiring.start_api_thread(config, pipeline.sink) if serve else None
    scheduler = Scheduler(pipeline, worker.broker)
    flag, aps = tick_flag(config.schedule_minute)

    def maybe_tick(channel) -> None:
        if flag.is_set():
            flag.clear()
            scheduler.tick(channel)

    consumer = JobConsumer(worker.broker, worker.handler, config.prefetch, on_iteration=maybe_tick)
    stop_gracefully(consumer, config.shutdown_grace_seconds)
    wiring.serve_health(config, wiring.readiness(lambda: pipeline.sink))
    log.info("running: scheduler and consumer", schedule_minute=config.schedule_minute,
             broker=worker.broker.url.split("@")[-1])
    try:
        consumer.run()
    finally:
        aps.shutdown(wait=False)
        if api is not None:
            api.stop()
    click.echo(f"run: stopped; {dict(worker.handler.outcomes)}")


@cli.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Serve the read API (Metroculus's kubecost endpoints and a breakdown) from ClickHouse."""
    import uvicorn

    from ..api.server import server_options

    config = config_of(ctx, "KCW_CLUSTER_SECRET")
    sink = wiring.open_sink(config)
    log.info("serving the read API", host=config.api_host, port=config.api_port)
    uvicorn.run(wiring.read_api(config, sink), host=config.api_host, port=config.api_port, log_level="warning",
                access_log=False, **server_options())


@cli.command()
@click.pass_context
def schedule(ctx: click.Context) -> None:
    """Producer only: enqueue the due tenant-hours now and then hourly (consumers run elsewhere)."""
    from ..jobs.scheduler import Scheduler, run_blocking

    config = config_of(ctx, "KCW_THANOS_URL")
    broker = shared_broker(config, "schedule")
    if config.is_embedded_clickhouse:
        raise click.UsageError("`schedule` runs beside consumers that must see the same run ledger: it needs a "
                               "ClickHouse server (KCW_CLICKHOUSE_URL=http(s)://...); with chDB use `run`")
    pipeline = wiring.build_pipeline(config)
    wiring.serve_health(config, wiring.readiness(lambda: pipeline.sink))
    run_blocking(Scheduler(pipeline, broker), config.schedule_minute)


@cli.command()
@click.option("--export-optscale", "then_export", is_flag=True,
              help="Then write yesterday's and today's costs into OptScale's expenses table (export-optscale).")
@click.pass_context
def once(ctx: click.Context, then_export: bool) -> None:
    """Enqueue everything due, process it, exit (for a Kubernetes CronJob)."""
    from ..jobs.consumer import drain
    from ..jobs.scheduler import Scheduler

    config = config_of(ctx, "KCW_THANOS_URL")
    worker = wiring.build_worker(config, eager=True)
    pipeline = worker.pipeline()
    wiring.require_migrated(pipeline.sink)
    jobs = Scheduler(pipeline, worker.broker).tick()
    outcomes = drain(worker.broker, worker.handler)
    failed = sum(n for outcome, n in outcomes.items() if outcome.startswith("dead"))
    click.echo(f"once: {len(jobs)} jobs enqueued; {outcomes.get('done', 0)} done, {outcomes.get('retried', 0)} "
               f"retries, {failed} dead-lettered")
    if then_export:
        from ..read.optscale import default_window

        for exported in wiring.export_optscale(config, pipeline.sink, [], *default_window()):
            click.echo(exported.line())
    if failed:
        raise WorkerError(f"{failed} jobs were dead-lettered (see the log)")
