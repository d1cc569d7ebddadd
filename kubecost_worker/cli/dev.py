"""Development commands (``kubecost_worker.devtools``): ``demo``, ``simulate``."""

from __future__ import annotations

import click

from .. import logs
from .base import TimeParam, cli


@cli.command()
@click.option("--workdir", default=".demo", show_default=True, type=click.Path(file_okay=False),
              help="Scratch directory (emptied first): simulation, Prometheus TSDB, embedded ClickHouse.")
@click.option("--tenants", "tenant_count", default=2, show_default=True, type=click.IntRange(1))
@click.option("--hours", default=24, show_default=True, type=click.IntRange(1))
@click.option("--pods", default=20, show_default=True, type=click.IntRange(1))
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1))
def demo(workdir: str, tenant_count: int, hours: int, pods: int, nodes: int) -> None:
    """Simulate a cluster, serve it from a local Prometheus, run the worker into embedded ClickHouse, report."""
    from ..devtools.demo import run_demo

    logs.configure("text", "warning")
    accuracy = run_demo(workdir, tenant_count=tenant_count, hours=hours, pods=pods, nodes=nodes, echo=click.echo)
    if not accuracy.exact:  # the demo is also the laptop's proof that the numbers are right: say so by the exit code
        raise click.ClickException("the stored rows differ from the simulator's ground truth (see above)")


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
    from ..devtools.simulation import write_simulation
    from ..hours import HOUR, last_closed_hour

    end = end if end is not None else last_closed_hour() + HOUR
    end -= end % HOUR
    tenants = [f"sim-tenant-{i + 1:04d}" for i in range(tenant_count)]
    written = write_simulation(out_dir, tenants, end - hours * HOUR, hours, nodes=nodes, pods=pods, seed=seed)
    click.echo(f"simulate: {written['samples']} samples of {written['series']} series for {tenant_count} tenants x "
               f"{hours} hours -> {written['openmetrics']}, ground truth -> {written['ground_truth']}")
