"""The ``kubecost-worker`` command line. Thin: parse, build the config, call the pipeline, report.

Every ``KCW_*`` setting is also a flag of the main command (``kubecost-worker --thanos-url URL backfill ...``);
a flag wins over the environment. Exit status 0 on success, 1 when work failed, 2 on invalid usage or
configuration, always with a one-line reason on stderr.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from typing import Any

import click
import structlog

from . import logs
from .config import SETTINGS, Config, load_config
from .errors import ConfigError, TransientError, WorkerError

log = structlog.get_logger(__name__)


def parse_time(raw: str) -> int:
    """ISO-8601 (UTC unless it says otherwise) or unix seconds -> unix seconds."""
    raw = raw.strip()
    if raw.lstrip("-").isdigit():
        return int(raw)
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected ISO-8601 UTC (2026-01-31T10:00:00Z) or unix seconds, got {raw!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return int(parsed.timestamp())


class TimeParam(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_time(value)
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def _settings_options(command):
    for setting in reversed(list(SETTINGS.values())):
        command = click.option(setting.flag, setting.env, default=None, metavar="VALUE",
                               help=f"{setting.help} [env {setting.env}]")(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@_settings_options
@click.pass_context
def cli(ctx: click.Context, **flags: str | None) -> None:
    """Kubecost metrics in Thanos -> hourly Kubernetes expenses in ClickHouse."""
    ctx.obj = {**os.environ, **{env: value for env, value in flags.items() if value is not None}}


def _config(ctx: click.Context, *require: str) -> Config:
    config = load_config(ctx.obj, require=require)
    logs.configure(config.log_format, config.log_level)
    return config


@cli.command()
@click.option("--resume", is_flag=True, help="Re-run a migration that was started but never finished.")
@click.pass_context
def migrate(ctx: click.Context, resume: bool) -> None:
    """Apply pending schema migrations (idempotent)."""
    from .sink.clickhouse import connect

    config = _config(ctx)
    applied = _apply_schema(connect(config.clickhouse_url), config, resume)
    click.echo(f"migrate: applied {', '.join(applied)}" if applied else "migrate: schema up to date")
    if config.retention_days:
        click.echo(f"migrate: retention {config.retention_days} days")


def _apply_schema(client, config: Config, resume: bool = False) -> list[str]:
    """What `migrate` does, and `run` at start-up: the pending migrations, then the retention TTL."""
    from .sink import migrations

    applied = migrations.migrate(client, resume=resume, cluster=config.clickhouse_cluster)
    migrations.apply_retention(client, config.retention_days, config.clickhouse_cluster)
    return applied


def _require_migrated(sink) -> None:
    from .sink import migrations

    if not migrations.is_up_to_date(sink.client):
        raise WorkerError("the schema is not up to date: run `kubecost-worker migrate` first")


@cli.command()
@click.option("--tenant", "tenants", multiple=True, help="Tenant (cloud account id); repeat; default: all tenants.")
@click.option("--start", required=True, type=TimeParam(), help="Start, ISO-8601 UTC or unix seconds.")
@click.option("--end", required=True, type=TimeParam(), help="End (exclusive), ISO-8601 UTC or unix seconds.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--force", is_flag=True, help="Replace hours even where far less data is found than is stored.")
@click.pass_context
def backfill(ctx: click.Context, tenants: tuple[str, ...], start: int, end: int, progress: bool | None,
             force: bool) -> None:
    """Process every whole hour in [start, end) for the given tenants."""
    from .pipeline import backfill as run_backfill
    from .runs import hour_starts

    if end <= start:
        raise click.BadParameter("--end must be after --start")
    if tenants:
        ctx.obj = {**ctx.obj, "KCW_TENANTS": ",".join(tenants)}
    config = _config(ctx, "KCW_THANOS_URL")
    pipeline = _pipeline(config)
    _require_migrated(pipeline.sink)
    show = sys.stderr.isatty() if progress is None else progress
    summary = run_backfill(pipeline, pipeline.tenants(), hour_starts(start, end), progress=show, force=force)
    click.echo(summary.line())
    if summary.failed:
        raise WorkerError(f"{summary.failed} of {summary.done + summary.failed} tenant-hours failed (see the log)")


@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "tsv", "json"]), default="table", show_default=True)
@click.pass_context
def sql(ctx: click.Context, query: str, fmt: str) -> None:
    """Run one SQL query on the configured ClickHouse (handy for the embedded chDB) and print the rows."""
    from .sink.clickhouse import ClickHouseSink, classified

    config = _config(ctx)
    with classified("running the query"):
        result = ClickHouseSink.open(config.clickhouse_url).client.query(query)
    click.echo(format_rows(list(result.column_names), result.result_rows, fmt))


def format_rows(names: list[str], rows: list[tuple], fmt: str = "table") -> str:
    if fmt == "json":
        import json

        return "\n".join(json.dumps(dict(zip(names, row)), default=str) for row in rows)
    cells = [names] + [[f"{v:.6f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    if fmt == "tsv":
        return "\n".join("\t".join(line) for line in cells)
    widths = [max(len(line[i]) for line in cells) for i in range(len(names))]
    numeric = [bool(rows) and all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(names))]
    return "\n".join("  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(line, widths, numeric)).rstrip()
                     for line in cells)


@cli.command()
@click.option("--workdir", default=".demo", show_default=True, type=click.Path(file_okay=False),
              help="Scratch directory (emptied first): simulation, Prometheus TSDB, embedded ClickHouse.")
@click.option("--tenants", "tenant_count", default=2, show_default=True, type=click.IntRange(1))
@click.option("--hours", default=24, show_default=True, type=click.IntRange(1))
@click.option("--pods", default=20, show_default=True, type=click.IntRange(1))
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1))
def demo(workdir: str, tenant_count: int, hours: int, pods: int, nodes: int) -> None:
    """Simulate a cluster, serve it from a local Prometheus, run the worker into embedded ClickHouse, report."""
    from .demo import run_demo

    logs.configure("text", "warning")
    run_demo(workdir, tenant_count=tenant_count, hours=hours, pods=pods, nodes=nodes, echo=click.echo)


def _serve_health(config: Config, ready) -> None:
    """/metrics, /healthz and /readyz of a worker process on KCW_METRICS_PORT (0 turns them off)."""
    from .telemetry import serve_health

    if config.metrics_port:
        try:
            serve_health(config.api_host, config.metrics_port, ready)
        except OSError as exc:
            raise click.UsageError(f"cannot serve /metrics on {config.api_host}:{config.metrics_port}: {exc.strerror} "
                                   "(another worker on this host? set KCW_METRICS_PORT to a free port, or 0)")
        log.info("serving /metrics, /healthz, /readyz", host=config.api_host, port=config.metrics_port)


def _ready(sink_of):
    """Readiness: ClickHouse answers and every migration is applied."""
    from .sink import migrations

    return lambda: migrations.is_up_to_date(sink_of().client)


def _require_shared_broker(config: Config, command: str) -> None:
    if config.broker_url.startswith("memory:"):
        raise click.UsageError(f"`{command}` needs a broker shared between processes (KCW_BROKER_URL=amqp://...); "
                               "with the embedded memory:// broker one process does everything: use `run`, "
                               "`once` or `backfill`")


def _shared_broker(config: Config, command: str):
    """The broker, for commands that only make sense with one shared between processes (RabbitMQ)."""
    from .jobs.broker import Broker

    _require_shared_broker(config, command)
    return Broker.from_config(config)


def _worker_parts(ctx: click.Context, eager: bool):
    """Config, broker and job handler shared by run, consume and once."""
    from .jobs.broker import Broker
    from .jobs.consumer import JobHandler

    config = _config(ctx, "KCW_THANOS_URL")
    broker = Broker.from_config(config)
    pipeline = _pipeline(config) if eager else None
    handler = JobHandler(config, broker, (lambda: pipeline) if eager else (lambda: _pipeline(config)))
    return config, broker, handler


@cli.command()
@click.pass_context
def consume(ctx: click.Context) -> None:
    """Process jobs from the queue until SIGTERM (reconnects after broker restarts)."""
    from .jobs.consumer import JobConsumer, stop_gracefully

    config, broker, handler = _worker_parts(ctx, eager=False)
    _require_shared_broker(config, "consume")
    consumer = JobConsumer(broker, handler, config.prefetch)
    stop_gracefully(consumer, config.shutdown_grace_seconds)
    _serve_health(config, _ready(lambda: handler.pipeline().sink))
    try:  # an unmigrated schema would fail every job: refuse to start, as backfill does
        _require_migrated(handler.pipeline().sink)
    except TransientError as exc:  # ClickHouse not up yet: the first job finds out, and is retried
        log.warning("ClickHouse unavailable at start-up; consuming anyway", error=str(exc))
    log.info("consuming", queue=broker.jobs.name, prefetch=config.prefetch)
    consumer.run()
    click.echo(f"consume: stopped; {dict(handler.outcomes)}")


@cli.command()
@click.option("--serve", is_flag=True, help="Also serve the read API (an embedded chDB path opens in one process).")
@click.pass_context
def run(ctx: click.Context, serve: bool) -> None:
    """Scheduler and consumer in one process (the embedded mode: chDB and memory:// need it)."""
    from .jobs.consumer import JobConsumer, stop_gracefully
    from .jobs.scheduler import Scheduler, tick_flag

    if serve:
        _config(ctx, "KCW_CLUSTER_SECRET")
    config, broker, handler = _worker_parts(ctx, eager=True)
    pipeline = handler.pipeline()
    _apply_schema(pipeline.sink.client, config)
    api = _start_api_thread(config, pipeline.sink) if serve else None
    scheduler = Scheduler(pipeline, broker)
    flag, aps = tick_flag(config.schedule_minute)

    def maybe_tick(channel) -> None:
        if flag.is_set():
            flag.clear()
            scheduler.tick(channel)

    consumer = JobConsumer(broker, handler, config.prefetch, on_iteration=maybe_tick)
    stop_gracefully(consumer, config.shutdown_grace_seconds)
    _serve_health(config, _ready(lambda: pipeline.sink))
    log.info("running: scheduler and consumer", schedule_minute=config.schedule_minute, broker=broker.url.split("@")[-1])
    try:
        consumer.run()
    finally:
        aps.shutdown(wait=False)
        if api is not None:
            api.should_exit = True
    click.echo(f"run: stopped; {dict(handler.outcomes)}")


@cli.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Serve the read API (Metroculus's kubecost endpoints and a breakdown) from ClickHouse."""
    import uvicorn

    from .sink.clickhouse import ClickHouseSink

    config = _config(ctx, "KCW_CLUSTER_SECRET")
    sink = ClickHouseSink.open(config.clickhouse_url)
    log.info("serving the read API", host=config.api_host, port=config.api_port)
    uvicorn.run(_api(config, sink), host=config.api_host, port=config.api_port, log_level="warning",
                access_log=False)


def _api(config: Config, sink):
    """The read API on clients of its own (one per request in flight: a streamed answer holds its client)."""
    from .api.app import create_app
    from .sink.clickhouse import ReadClients

    return create_app(ReadClients(config.clickhouse_url), config.cluster_secret, ready=_ready(lambda: sink))


def _start_api_thread(config: Config, sink):
    """uvicorn in a thread beside the consumer (it installs no signal handlers off the main thread)."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(_api(config, sink), host=config.api_host, port=config.api_port,
                                           log_level="warning", access_log=False))
    threading.Thread(target=server.run, name="api", daemon=True).start()
    log.info("serving the read API", host=config.api_host, port=config.api_port)
    return server


@cli.command()
@click.pass_context
def schedule(ctx: click.Context) -> None:
    """Producer only: enqueue the due tenant-hours now and then hourly (consumers run elsewhere)."""
    from .jobs.scheduler import Scheduler, run_blocking

    config = _config(ctx, "KCW_THANOS_URL")
    broker = _shared_broker(config, "schedule")
    if config.is_embedded_clickhouse:
        raise click.UsageError("`schedule` runs beside consumers that must see the same run ledger: it needs a "
                               "ClickHouse server (KCW_CLICKHOUSE_URL=http(s)://...); with chDB use `run`")
    pipeline = _pipeline(config)
    _serve_health(config, _ready(lambda: pipeline.sink))
    run_blocking(Scheduler(pipeline, broker), config.schedule_minute)


@cli.command()
@click.pass_context
def once(ctx: click.Context) -> None:
    """Enqueue everything due, process it, exit (for a Kubernetes CronJob)."""
    from .jobs.consumer import drain
    from .jobs.scheduler import Scheduler

    config, broker, handler = _worker_parts(ctx, eager=True)
    pipeline = handler.pipeline()
    _require_migrated(pipeline.sink)
    jobs = Scheduler(pipeline, broker).tick()
    outcomes = drain(broker, handler)
    failed = sum(n for outcome, n in outcomes.items() if outcome.startswith("dead"))
    click.echo(f"once: {len(jobs)} jobs enqueued; {outcomes.get('done', 0)} done, {outcomes.get('retried', 0)} "
               f"retries, {failed} dead-lettered")
    if failed:
        raise WorkerError(f"{failed} jobs were dead-lettered (see the log)")


@cli.command()
@click.option("--tenant", "tenants", multiple=True, required=True, help="Tenant (cloud account id); repeat.")
@click.option("--start", required=True, type=TimeParam(), help="Start, on an hour, ISO-8601 UTC or unix seconds.")
@click.option("--end", required=True, type=TimeParam(), help="End (exclusive), on an hour.")
@click.option("--force", is_flag=True,
              help="Replace hours even where the rerun finds far less data than is stored (KCW_REFUSE_BELOW).")
@click.pass_context
def rerun(ctx: click.Context, tenants: tuple[str, ...], start: int, end: int, force: bool) -> None:
    """Publish rerun jobs for the tenants and range (validated before anything is published)."""
    from .jobs.messages import InvalidJob, Job, validate
    from .runs import HOUR

    config = _config(ctx)
    broker = _shared_broker(config, "rerun")
    requested = int(time.time())
    try:
        ranges = [validate(Job(t, start, end, "rerun", requested), config.max_rerun_hours) for t in tenants]
    except InvalidJob as exc:
        raise click.BadParameter(str(exc))
    jobs = [Job(r.cloud_account_id, h, h + HOUR, "rerun", requested, force) for r in ranges for h in r.hours]
    for job in jobs:
        broker.publish(job)
    broker.close()
    click.echo(f"rerun: published {len(jobs)} tenant-hour jobs ({len(tenants)} tenants x {len(jobs) // len(tenants)} hours)")


@cli.command()
@click.option("--tenant", default=None, help="Only this tenant.")
@click.pass_context
def status(ctx: click.Context, tenant: str | None) -> None:
    """Per tenant from the run ledger: the last complete hour, the gaps and the failures."""
    from .jobs.status import summarize
    from .sink.clickhouse import ClickHouseSink

    config = _config(ctx)
    sink = ClickHouseSink.open(config.clickhouse_url)
    click.echo(summarize(sink.ledger_summary(tenant)))


@cli.command()
@click.option("--since", type=TimeParam(), default=None,
              help="Only hours whose ledger changed since then (ISO-8601 UTC or unix seconds); default: every hour.")
@click.pass_context
def gc(ctx: click.Context, since: int | None) -> None:
    """Remove the rows of superseded, failed and abandoned runs (the scheduler does it each tick)."""
    from .runs import utc
    from .sink.clickhouse import ClickHouseSink

    config = _config(ctx)
    sink = ClickHouseSink.open(config.clickhouse_url, config.clickhouse_cluster)
    _require_migrated(sink)
    collected = sink.collect_garbage(utc(since) if since is not None else None)
    click.echo(f"gc: removed the rows of {collected.runs} runs in {collected.partitions} monthly partitions, "
               f"{collected.seconds:.2f} s")


@cli.group()
def dlq() -> None:
    """Inspect and replay dead letters (RabbitMQ)."""


@dlq.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.pass_context
def dlq_list(ctx: click.Context, limit: int) -> None:
    """Print dead letters with their reasons; they stay in the queue."""
    from .jobs.deadletters import list_dead

    broker = _shared_broker(_config(ctx), "dlq list")
    for line in list_dead(broker, limit):
        click.echo(line)
    broker.close()


@dlq.command("replay")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.pass_context
def dlq_replay(ctx: click.Context, limit: int) -> None:
    """Move dead letters back to the job queue with a fresh retry budget."""
    from .jobs.deadletters import replay_dead

    broker = _shared_broker(_config(ctx), "dlq replay")
    replayed = replay_dead(broker, limit)
    broker.close()
    click.echo(f"dlq replay: {replayed} messages back in {broker.jobs.name}")


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--tenants", "tenant_count", default=2, show_default=True, type=click.IntRange(1), help="Tenants.")
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1), help="Nodes per tenant.")
@click.option("--pods", default=20, show_default=True, type=click.IntRange(1), help="Pods per tenant.")
@click.option("--hours", default=24, show_default=True, type=click.IntRange(1), help="Hours simulated.")
@click.option("--end", type=TimeParam(), default=None, help="End of the last hour (default: the last full hour).")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
def simulate(out_dir: str, tenant_count: int, nodes: int, pods: int, hours: int, end: int | None, seed: int) -> None:
    """Write a synthetic multi-tenant cluster as OpenMetrics plus its ground truth."""
    from .runs import HOUR
    from .simulate import write_simulation

    end = end if end is not None else int(time.time()) // HOUR * HOUR
    end -= end % HOUR
    tenants = [f"sim-tenant-{i + 1:04d}" for i in range(tenant_count)]
    written = write_simulation(out_dir, tenants, end - hours * HOUR, hours, nodes=nodes, pods=pods, seed=seed)
    click.echo(f"simulate: {written['samples']} samples of {written['series']} series for {tenant_count} tenants x "
               f"{hours} hours -> {written['openmetrics']}, ground truth -> {written['ground_truth']}")


def _pipeline(config: Config):
    from .pipeline import Pipeline
    from .sink.clickhouse import ClickHouseSink
    from .source.thanos import ThanosClient, ThanosSettings

    return Pipeline(config, ThanosClient(ThanosSettings.from_config(config)),
                    ClickHouseSink.open(config.clickhouse_url, config.clickhouse_cluster))


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="kubecost-worker", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("kubecost-worker: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"kubecost-worker: {exc.format_message()}", err=True)
        return 2
    except ConfigError as exc:
        click.echo(f"kubecost-worker: {exc}", err=True)
        return 2
    except WorkerError as exc:
        click.echo(f"kubecost-worker: {exc}", err=True)
        return 1
    except Exception as exc:  # a bug, not an expected failure: still one line, the traceback at debug level
        log.debug("unexpected error", exc_info=True)
        click.echo(f"kubecost-worker: unexpected {type(exc).__name__}: {str(exc).strip()[:500]}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
