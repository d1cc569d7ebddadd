"""The job queue (RabbitMQ): ``rerun``, ``dlq list``, ``dlq replay``."""

from __future__ import annotations

import time

import click

from .base import TimeParam, cli, config_of, shared_broker


@cli.command()
@click.option("--tenant", "tenants", multiple=True, required=True, help="Tenant (cloud account id); repeat.")
@click.option("--start", required=True, type=TimeParam(), help="Start, on an hour, ISO-8601 UTC or unix seconds.")
@click.option("--end", required=True, type=TimeParam(), help="End (exclusive), on an hour.")
@click.option("--force", is_flag=True,
              help="Replace hours even where the rerun finds far less data than is stored (KCW_REFUSE_BELOW).")
@click.pass_context
def rerun(ctx: click.Context, tenants: tuple[str, ...], start: int, end: int, force: bool) -> None:
    """Publish a rerun job per tenant for the range (validated before anything is published). Consumers split a
    range into jobs of KCW_BATCH_HOURS hours as they take it, each a batch, so jobs queued meanwhile (the scheduled
    hours) wait for one of its batches at most."""
    from ..jobs.messages import InvalidJob, Job, validate

    config = config_of(ctx)
    broker = shared_broker(config, "rerun")
    requested = int(time.time())
    try:
        jobs = [validate(Job(t, start, end, "rerun", requested, force), config.max_rerun_hours) for t in tenants]
    except InvalidJob as exc:
        raise click.BadParameter(str(exc))
    for job in jobs:
        broker.publish(job)
    broker.close()
    hours = len(jobs[0].hour_starts)
    click.echo(f"rerun: published {len(jobs)} job{'s' if len(jobs) > 1 else ''} for {len(jobs) * hours} tenant-hours "
               f"({len(tenants)} tenants x {hours} hours; consumers split them into jobs of at most "
               f"{config.batch_hours} hours)")


@cli.group()
def dlq() -> None:
    """Inspect and replay dead letters (RabbitMQ)."""


@dlq.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.pass_context
def dlq_list(ctx: click.Context, limit: int) -> None:
    """Print dead letters with their reasons; they stay in the queue."""
    from ..jobs.deadletters import list_dead

    broker = shared_broker(config_of(ctx), "dlq list")
    for line in list_dead(broker, limit):
        click.echo(line)
    broker.close()


@dlq.command("replay")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.pass_context
def dlq_replay(ctx: click.Context, limit: int) -> None:
    """Move dead letters back to the job queue with a fresh retry budget."""
    from ..jobs.deadletters import replay_dead

    broker = shared_broker(config_of(ctx), "dlq replay")
    replayed = replay_dead(broker, limit)
    broker.close()
    click.echo(f"dlq replay: {replayed} messages back in {broker.jobs.name}")
