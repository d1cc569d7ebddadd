"""The stored data: ``migrate``, ``backfill``, ``sql``, ``export``, ``export-optscale``, ``bill-load``, ``reconcile``,
``status``, ``gc``, ``rollup-days``."""

from __future__ import annotations

import sys

import click

from .. import wiring
from ..errors import WorkerError
from .base import TimeParam, cli, config_of


@cli.command()
@click.option("--resume", is_flag=True, help="Re-run a migration that was started but never finished.")
@click.pass_context
def migrate(ctx: click.Context, resume: bool) -> None:
    """Apply pending schema migrations (idempotent)."""
    config = config_of(ctx)
    applied = wiring.apply_schema(wiring.open_sink(config), config, resume)
    click.echo(f"migrate: applied {', '.join(applied)}" if applied else "migrate: schema up to date")
    if config.retention_days:
        click.echo(f"migrate: hourly rows kept {config.retention_days} days and today (the scheduler expires them)")
    if config.daily_retention_days:
        click.echo(f"migrate: the daily tier kept {config.daily_retention_days} days")


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
    from ..pipeline import run_hours
    from ..hours import hour_starts

    if end <= start:
        raise click.BadParameter("--end must be after --start")
    if tenants:
        ctx.obj = {**ctx.obj, "KCW_TENANTS": ",".join(tenants)}
    config = config_of(ctx, "KCW_THANOS_URL")
    pipeline = wiring.build_pipeline(config)
    wiring.require_migrated(pipeline.sink)
    show = sys.stderr.isatty() if progress is None else progress
    summary = run_hours(pipeline, pipeline.tenants(), hour_starts(start, end), progress=show, force=force)
    click.echo(summary.line())
    if summary.failed:
        raise WorkerError(f"{summary.failed} of {summary.done + summary.failed} tenant-hours failed (see the log)")


@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "tsv", "json"]), default="table", show_default=True)
@click.pass_context
def sql(ctx: click.Context, query: str, fmt: str) -> None:
    """Run one SQL query on the configured ClickHouse (handy for the embedded chDB) and print the rows."""
    from ..output import format_rows

    names, rows = wiring.open_sink(config_of(ctx)).query_with_names(query)
    click.echo(format_rows(names, rows, fmt))


@cli.command()
@click.option("--tenant", required=True, help="Tenant (cloud account id).")
@click.option("--start", required=True, type=TimeParam(), help="Start, ISO-8601 UTC or unix seconds.")
@click.option("--end", required=True, type=TimeParam(), help="End (exclusive), ISO-8601 UTC or unix seconds.")
# --aggregate and --step: plain strings read by the read API's own parser, so both read them alike
@click.option("--aggregate", default=None,
              help="Sums grouped as the read API's k8s_expenses groups them (e.g. namespace,label:team); "
                   "default: every row of k8s_expenses_current.")
@click.option("--step", metavar="hour|day|week|month|window", default="window", show_default=True,
              help="With --aggregate: one row per group and step.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl"]), required=True)
# a plain string: click would turn an empty --out into the path "."
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The file to write.")
@click.option("--reconciled", is_flag=True,
              help="The costs reconciled with the cloud bill, the list costs beside (docs/reconciliation.md).")
@click.pass_context
def export(ctx: click.Context, tenant: str, start: int, end: int, aggregate: str | None, step: str, fmt: str,
           out: str, reconciled: bool) -> None:
    """Write a tenant's current data over [start, end) to a file, in ClickHouse's own CSV, Parquet or JSON lines."""
    from ..read.allocation import BadParameter, parse_aggregate, parse_step
    from ..read.exports import BadOutput, check_output
    from ..read.exports import export as write_export
    from ..store.client import classified

    if end <= start:
        raise click.BadParameter("--end must be after --start")
    try:
        step = parse_step(step)
        if aggregate is not None:
            parse_aggregate(aggregate)
    except BadParameter as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{exc.name}") from None
    try:
        check_output(out)  # before any query: a wrong path is reported as such, not after the work
    except BadOutput as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    sink = wiring.open_sink(config_of(ctx))
    wiring.require_migrated(sink)

    def progress(written: int) -> None:
        click.echo(f"export: {written / 1e6:.1f} MB written", err=True)

    try:
        with classified("exporting"):
            written = write_export(sink.client, out, fmt, tenant, start, end, aggregate, step, progress, reconciled)
    except BadOutput as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    click.echo(f"export: {written:,} bytes to {out}")


@cli.command("export-optscale")
@click.option("--tenant", "tenants", multiple=True,
              help="Tenant (cloud account id); repeat; default: every tenant with runs in the window.")
@click.option("--start", type=TimeParam(), default=None,
              help="Start, ISO-8601 UTC or unix seconds, widened to its UTC day; default: yesterday 00:00 UTC.")
@click.option("--end", type=TimeParam(), default=None,
              help="End (exclusive), widened to the end of its UTC day; default: now (today's day so far).")
@click.option("--create-table", is_flag=True, help="Create the target table with OptScale's DDL if it is missing.")
@click.option("--reconciled", is_flag=True,
              help="The costs reconciled with the cloud bill (docs/reconciliation.md); keep to one kind per target.")
@click.pass_context
def export_optscale(ctx: click.Context, tenants: tuple[str, ...], start: int | None, end: int | None,
                    create_table: bool, reconciled: bool) -> None:
    """Write the daily costs of k8s_expenses_daily into OptScale's expenses table (KCW_OPTSCALE_TABLE), as its
    importers do: +1 rows for new resource-days, -1/+1 for changed costs, -1 for resource-days gone; a second run
    over unchanged data writes nothing (docs/optscale.md)."""
    from ..read import optscale
    from ..config import is_safe_tenant_id

    default_start, default_end = optscale.default_window()
    start = default_start if start is None else start
    end = default_end if end is None else end
    if end <= start:
        raise click.BadParameter("--end must be after --start")
    unsafe = [t for t in tenants if not is_safe_tenant_id(t)]
    if unsafe:
        raise click.BadParameter(f"not a safe tenant id: {unsafe[0]!r}", param_hint="--tenant")
    config = config_of(ctx)
    sink = wiring.open_sink(config)
    wiring.require_migrated(sink)
    for exported in wiring.export_optscale(config, sink, list(tenants), start, end, create_table, reconciled):
        click.echo(exported.line())


@cli.command("bill-load")
@click.argument("files", metavar="FILE_OR_URL...", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default=None,
              help="The files' format; default: from each name (.csv, .csv.gz, .parquet).")
@click.option("--max-bytes", type=click.IntRange(min=1), default=None, metavar="BYTES",
              help="Refuse a file larger than this (default: 10 GiB).")
@click.pass_context
def bill_load(ctx: click.Context, files: tuple[str, ...], fmt: str | None, max_bytes: int | None) -> None:
    """Load FOCUS exports of the cloud bill (local files, http(s):// or s3:// URLs the ClickHouse server reads) into
    KCW_BILL_TABLE as one bill: each billing period they hold replaces that period, the others stay as they are."""
    from ..store import bill

    if len(set(files)) != len(files):
        raise click.BadParameter("a file is named twice: its lines would count twice", param_hint="FILE_OR_URL")
    try:
        sources = [bill.source_of(name, fmt) for name in files]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="FILE_OR_URL") from None
    config = config_of(ctx)
    if config.clickhouse_cluster:
        raise click.UsageError("bill-load does not load into a cluster (KCW_CLICKHOUSE_CLUSTER) yet")
    sink = wiring.open_sink(config)
    wiring.require_migrated(sink)
    loaded = bill.load_bill(sink.client, sources, config.bill_table, max_bytes or bill.MAX_BYTES)
    click.echo(loaded.line())


@cli.command()
@click.option("--tenant", "tenants", multiple=True, help="Tenant (cloud account id); repeat; default: every tenant.")
@click.option("--start", type=TimeParam(), default=None,
              help="Start, ISO-8601 UTC or unix seconds, widened to its UTC day; default: KCW_BILL_LAG_HOURS and "
                   "the scheduler's window before now.")
@click.option("--end", type=TimeParam(), default=None,
              help="End (exclusive), widened to the end of its UTC day; default: now less KCW_BILL_LAG_HOURS.")
@click.pass_context
def reconcile(ctx: click.Context, tenants: tuple[str, ...], start: int | None, end: int | None) -> None:
    """Reconcile the costs of the days in [start, end) that the cloud bill covers with it (docs/reconciliation.md):
    a line per tenant-day, reconciled anew or unchanged since its latest reconciliation."""
    import time

    from ..hours import DAY, HOUR
    from ..store import reconcile as reconciliation

    config = config_of(ctx)
    end = int(time.time()) - config.bill_lag_hours * HOUR if end is None else end
    start = end - reconciliation.WINDOW_DAYS * DAY if start is None else start
    if end <= start:
        raise click.BadParameter("--end must be after --start")
    sink = wiring.open_sink(config)
    wiring.require_migrated(sink)
    bill = reconciliation.BillSettings(config.bill_table, config.bill_cost)
    done = reconciliation.reconcile_days(sink.client, bill, tenants, start, end)
    for day in done:
        click.echo(f"reconcile: {day.line()}")
    if not done:
        click.echo("reconcile: no day with hours that the bill covers")


@cli.command()
@click.option("--tenant", default=None, help="Only this tenant.")
@click.pass_context
def status(ctx: click.Context, tenant: str | None) -> None:
    """A line per tenant from the run ledger and the daily tier: the last complete hour, the gaps, the failures and
    refusals as ranges of hours, the days built and sealed, the days reconciled with the bill; then a total line."""
    from ..jobs.status import summarize
    from ..store import days, reconcile

    sink = wiring.open_sink(config_of(ctx))
    tenants = [tenant] if tenant else ()
    click.echo(summarize(sink.ledger_summary(tenant), days.day_states(sink.client, tenants=tenants),
                         reconciled=reconcile.reconciled_days(sink.client, tenants)))


@cli.command()
@click.option("--since", type=TimeParam(), default=None,
              help="Only hours whose ledger changed since then by the ClickHouse server's clock, which stamps the "
                   "ledger (ISO-8601 UTC or unix seconds); default: every hour.")
@click.pass_context
def gc(ctx: click.Context, since: int | None) -> None:
    """Remove the rows of superseded, failed and abandoned runs and day builds (the scheduler does it each tick)."""
    from ..hours import utc

    sink = wiring.open_sink(config_of(ctx))
    wiring.require_migrated(sink)
    collected = sink.collect_garbage(utc(since) if since is not None else None)
    click.echo(f"gc: removed the rows of {collected.runs} runs and {collected.builds} day builds in "
               f"{collected.partitions} monthly partitions, {collected.seconds:.2f} s")


@cli.command("rollup-days")
@click.option("--tenant", "tenants", multiple=True, help="Tenant (cloud account id); repeat; default: all tenants.")
@click.option("--start", type=TimeParam(), default=None,
              help="First day (its UTC day), ISO-8601 UTC or unix seconds; default: the first hour stored.")
@click.option("--end", type=TimeParam(), default=None,
              help="End (exclusive, widened to the end of its UTC day); default: the last hour stored.")
@click.option("--resume", is_flag=True,
              help="Skip the days whose build already sums their current hours (an earlier run's, or the worker's).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.pass_context
def rollup_days(ctx: click.Context, tenants: tuple[str, ...], start: int | None, end: int | None, resume: bool,
                progress: bool | None) -> None:
    """Build the daily tier of the hours stored: each UTC day of [start, end) with current hours that is over (today
    is built once it is), summed again under a new build that supersedes the day's last (never adding to it); sealed
    days stay as they are."""
    import time

    from tqdm import tqdm

    from ..hours import DAY, day_of
    from ..store import days

    if start is not None and end is not None and end <= start:
        raise click.BadParameter("--end must be after --start")
    sink = wiring.open_sink(config_of(ctx))
    wiring.require_migrated(sink)
    today = day_of(time.time())
    wanted = [key for key, state in days.day_states(sink.client, tenants=tenants, start=start,
                                                    end=today if end is None else min(-(-end // DAY) * DAY, today)
                                                    ).items() if state.hours]
    with tqdm(total=len(wanted), disable=not (sys.stderr.isatty() if progress is None else progress),
              unit="day", file=sys.stderr) as bar:
        done = days.build_days(sink.client, wanted, resume=resume,
                               progress=lambda builds: bar.update(1))
    click.echo(f"rollup-days: {done.built} days built, {done.up_to_date} up to date, {done.sealed} sealed (final), "
               f"{done.failed} failed, {done.seconds:.1f} s")
    if done.failed:
        raise WorkerError(f"{done.failed} days could not be built (see the log); run again with --resume")
