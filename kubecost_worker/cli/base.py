"""The main command group, its settings flags and what every sub-command shares.

Every ``KCW_*`` setting is also a flag of the main command (``kubecost-worker --thanos-url URL backfill ...``);
a flag wins over the environment.
"""

from __future__ import annotations

import os
from typing import Any

import click

from .. import logs
from ..config import SETTINGS, Config, load_config
from ..hours import parse_time


class TimeParam(click.ParamType):
    """ISO-8601 (a time without a zone is UTC) or unix seconds, as whole unix seconds."""

    name = "TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        try:
            return int(parse_time(value, naive_is_utc=True))
        except ValueError:
            self.fail(f"expected ISO-8601 UTC (2026-01-31T10:00:00Z) or unix seconds, got {value!r}", param, ctx)


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


def config_of(ctx: click.Context, *require: str) -> Config:
    """The validated configuration of this invocation (environment and flags); logging set up from it."""
    config = load_config(ctx.obj, require=require)
    logs.configure(config.log_format, config.log_level)
    return config


def require_shared_broker(config: Config, command: str) -> None:
    if config.broker_url.startswith("memory:"):
        raise click.UsageError(f"`{command}` needs a broker shared between processes (KCW_BROKER_URL=amqp://...); "
                               "with the embedded memory:// broker one process does everything: use `run`, "
                               "`once` or `backfill`")


def shared_broker(config: Config, command: str):
    """The broker, for commands that only make sense with one shared between processes (RabbitMQ)."""
    from ..jobs.broker import Broker

    require_shared_broker(config, command)
    return Broker.from_config(config)
