"""The ``kubecost-worker`` command line. Thin: parse, build the config, call ``wiring`` and the core, report.

One module per command group: ``worker`` (run, consume, schedule, once, serve), ``data`` (migrate, backfill, sql,
export, export-optscale, bill-load, reconcile, status, gc), ``queue`` (rerun, dlq), ``dev`` (demo, simulate); ``base`` holds the
group and what they share.
Exit status 0 on success, 1 when work failed, 2 on invalid usage or configuration, always with a one-line reason
on stderr.
"""

from __future__ import annotations

import sys

import click
import structlog

from ..errors import ConfigError, WorkerError
from . import data, dev, queue, worker  # noqa: F401  (each registers its commands on the group)
from .base import cli

log = structlog.get_logger(__name__)


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
