"""Configuration: one frozen object, loaded from a mapping (the environment merged with CLI flags).

Every setting is an environment variable ``KCW_*`` and a CLI flag of the same name (``--thanos-url``).
``load_config`` validates everything at once and raises ``ConfigError`` listing every problem.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .errors import ConfigError

# A tenant id is data from outside that ends up in PromQL and in file names of logs: it must be plain.
# Cloud account ids are UUIDs or provider account numbers; this alphabet covers them with room to spare.
TENANT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+=-]{0,127}")


def is_safe_tenant_id(value: str) -> bool:
    return isinstance(value, str) and TENANT_ID_PATTERN.fullmatch(value) is not None


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {raw!r}")
    return value


def _parse_heartbeat(raw: str) -> int:
    # kombu's consumer loop sends its own heartbeats only when a 1-second read times out; with a heartbeat under
    # 5 s RabbitMQ's own (every half heartbeat) keep every read busy, and RabbitMQ drops the silent connection
    value = int(raw)
    if value < 5:
        raise ValueError(f"expected at least 5 seconds, got {raw!r}")
    return value


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(f"expected a positive number, got {raw!r}")
    return value


def _parse_price(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < float("inf"):  # NaN fails too
        raise ValueError(f"expected a price >= 0 in dollars, got {raw!r}")
    return value


def _parse_non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"expected an integer >= 0, got {raw!r}")
    return value


def _parse_fraction(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError(f"expected a fraction from 0 to 1, got {raw!r}")
    return value


def _parse_port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError(f"expected a port 1-65535, got {raw!r}")
    return value


def _parse_cluster_name(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", raw.strip()):
        raise ValueError(f"expected a cluster name of letters, digits, _ . -, got {raw!r}")
    return raw.strip()


def _parse_minute(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 59:
        raise ValueError(f"expected a minute 0-59, got {raw!r}")
    return value


def _parse_delays(raw: str) -> tuple[int, ...]:
    delays = tuple(_parse_positive_int(part.strip()) for part in raw.split(",") if part.strip())
    if not delays:
        raise ValueError("expected comma-separated seconds, e.g. 30,120,600")
    return delays


def _parse_broker_url(raw: str) -> str:
    scheme = urlsplit(raw.strip()).scheme
    if scheme not in ("memory", "amqp", "amqps", "pyamqp"):
        raise ValueError(f"expected memory:// or amqp://user:pass@host:5672/vhost, got {raw!r}")
    return raw.strip()


def _parse_queue_prefix(raw: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_.-]{0,40}", raw):
        raise ValueError(f"expected a short lower-case name, got {raw!r}")
    return raw


def _parse_tenants(raw: str) -> tuple[str, ...]:
    # Only spaces around commas are dropped: a newline or quote inside an id is an error, not trimmed away.
    tenants = tuple(t.strip(" ") for t in raw.split(",") if t.strip(" "))
    bad = [t for t in tenants if not is_safe_tenant_id(t)]
    if bad:
        raise ValueError(f"tenant ids outside the safe alphabet [A-Za-z0-9_.:@+=-]: {bad!r}")
    return tenants


def _parse_headers(raw: str) -> tuple[tuple[str, str], ...]:
    """``Name=value,Other=value`` (also ``Name: value``); e.g. ``THANOS-TENANT=acme``."""
    headers = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=") if "=" in item else item.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9-]+", name.strip()):
            raise ValueError(f"expected Name=value, got {item!r}")
        headers.append((name.strip(), value.strip()))
    return tuple(headers)


def _parse_http_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http(s):// URL, got {raw!r}")
    return raw.strip().rstrip("/")


def _parse_clickhouse_url(raw: str) -> str:
    raw = raw.strip()
    parts = urlsplit(raw)
    if parts.scheme == "chdb":
        # chdb://relative does not work with clickhouse-connect: insist on chdb:///absolute/path.
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(f"expected chdb:///absolute/path, got {raw!r}")
        return raw
    if parts.scheme in ("http", "https") and parts.hostname:
        return raw
    raise ValueError(f"expected chdb:///absolute/path or http(s)://user:pass@host:port/database, got {raw!r}")


def _parse_existing_file(raw: str) -> str:
    if not Path(raw).is_file():
        raise ValueError(f"no such file: {raw!r}")
    return raw


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.strip().lower() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return raw.strip().lower()

    return parse


def _parse_table_name(raw: str) -> str:
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)?", raw.strip()):
        raise ValueError(f"expected table or database.table (letters, digits, _), got {raw!r}")
    return raw.strip()


def _parse_bill_cost(raw: str) -> str:
    for column in ("EffectiveCost", "BilledCost"):
        if raw.strip().lower() == column.lower():
            return column
    raise ValueError(f"expected EffectiveCost or BilledCost, got {raw!r}")


def _parse_tenant_label(raw: str) -> str:
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", raw):
        raise ValueError(f"not a Prometheus label name: {raw!r}")
    return raw


@dataclass(frozen=True)
class Setting:
    env: str
    parse: Callable[[str], Any]
    default: str
    help: str
    empty: Any = None  # the value of an empty (unset) optional setting

    @property
    def flag(self) -> str:
        return "--" + self.env.removeprefix("KCW_").lower().replace("_", "-")


@dataclass(frozen=True)
class Config:
    """The whole configuration, validated. Field names match the settings below."""

    thanos_url: str | None
    thanos_token_file: str | None
    thanos_ca_file: str | None
    thanos_timeout_seconds: float
    thanos_headers: tuple[tuple[str, str], ...] = field(repr=False)  # may carry credentials
    thanos_dedup: bool | None
    thanos_partial_response: bool
    thanos_raw_only: bool
    thanos_retries: int
    thanos_parallel_queries: int
    thanos_compressed: bool
    batch_hours: int
    batch_series_hours: int
    tenant_label: str
    tenants: tuple[str, ...]
    data_dir: str
    clickhouse_url: str = field(repr=False)  # may carry a password
    clickhouse_cluster: str | None
    step_seconds: int
    log_format: str
    log_level: str
    broker_url: str = field(repr=False)  # may carry a password
    queue_prefix: str
    prefetch: int
    broker_heartbeat_seconds: int
    max_retries: int
    retry_delays_seconds: tuple[int, ...]
    max_rerun_hours: int
    schedule_minute: int
    lag_minutes: int
    max_catchup_hours: int
    recheck_hours: int
    shutdown_grace_seconds: float
    api_host: str
    api_port: int
    cluster_secret: str | None = field(repr=False)
    metrics_port: int
    retention_days: int
    daily_retention_days: int
    refuse_below: float
    default_cpu_price: float | None
    default_ram_price: float | None
    default_gpu_price: float | None
    optscale_clickhouse_url: str | None = field(repr=False)  # may carry a password
    optscale_table: str
    bill_table: str
    bill_cost: str
    bill_lag_hours: int

    @property
    def is_embedded_clickhouse(self) -> bool:
        return self.clickhouse_url.startswith("chdb:")

    @property
    def default_prices(self) -> dict[str, float] | None:
        """The configured default prices by resource (``compute_hour``'s ``default_prices``: only those set), or
        None when none is: a node without price series then prices its pods at 0."""
        prices = {resource: price for resource, price in (("cpu", self.default_cpu_price),
                                                          ("ram", self.default_ram_price),
                                                          ("gpu", self.default_gpu_price)) if price is not None}
        return prices or None


SETTINGS: dict[str, Setting] = {
    s.env: s
    for s in (
        Setting("KCW_THANOS_URL", _parse_http_url, "", "Base URL of Thanos Query or Prometheus."),
        Setting("KCW_THANOS_TOKEN_FILE", _parse_existing_file, "", "File holding a bearer token for Thanos."),
        Setting("KCW_THANOS_CA_FILE", _parse_existing_file, "", "CA bundle to verify Thanos's TLS certificate."),
        Setting("KCW_THANOS_TIMEOUT_SECONDS", _parse_positive_float, "60", "Timeout of one Thanos request."),
        Setting("KCW_THANOS_HEADERS", _parse_headers, "", "Extra headers, e.g. THANOS-TENANT=acme,X-Scope-OrgID=acme.", ()),
        Setting("KCW_THANOS_DEDUP", _parse_bool, "", "Thanos dedup parameter (unset: server default)."),
        Setting("KCW_THANOS_RAW_ONLY", _parse_bool, "true",
                "Ask Thanos for raw samples only (max_source_resolution=0s): downsampled blocks never stand in."),
        Setting("KCW_THANOS_PARTIAL_RESPONSE", _parse_bool, "false",
                "Thanos partial_response parameter; a partial answer is an error either way."),
        Setting("KCW_THANOS_RETRIES", _parse_positive_int, "5", "Attempts per Thanos request before giving up."),
        Setting("KCW_THANOS_PARALLEL_QUERIES", _parse_positive_int, "4",
                "Queries of one tenant-hour sent to Thanos at once (about a dozen in all)."),
        Setting("KCW_THANOS_COMPRESSED", _parse_bool, "false",
                "Ask Thanos for gzip-compressed answers: a ninth of the bytes for a sixth more of its CPU; for a "
                "slow or metered link to Thanos."),
        Setting("KCW_BATCH_HOURS", _parse_positive_int, "24",
                "Consecutive hours of a tenant whose summaries one range query asks (a backfill, a rerun range), at "
                "most, and the hours of a job a range is split into: what other tenants' jobs wait for at most; "
                "1: every hour alone."),
        Setting("KCW_BATCH_SERIES_HOURS", _parse_positive_int, "650000",
                "Memory budget of the batches held at once: a batch's hours x the series of the tenant's last hour, "
                "or for a tenant not seen yet its first hour's census (each series-hour holds about 0.15 kB while "
                "its batch is read). A batch takes half of it, so that the next is fetched while one runs, unless "
                "half holds fewer than 6 hours: then all of it, fetched alone (a 2,000-pod tenant has about 28,000 "
                "series: batches of 11-12 hours fetched ahead; a 10,000-pod tenant about 140,000: 4 hours alone)."),
        Setting("KCW_TENANT_LABEL", _parse_tenant_label, "tenant_id", "Label that holds the tenant (cloud account id)."),
        Setting("KCW_TENANTS", _parse_tenants, "", "Comma-separated tenant ids; empty: discover them in Thanos.", ()),
        Setting("KCW_DATA_DIR", str, ".kcw-data", "Directory of the embedded ClickHouse and other local state."),
        Setting("KCW_CLICKHOUSE_URL", _parse_clickhouse_url, "",
                "chdb:///absolute/path (embedded) or http(s)://user:pass@host:port/database; "
                "default: chdb under KCW_DATA_DIR."),
        Setting("KCW_CLICKHOUSE_CLUSTER", _parse_cluster_name, "",
                "ClickHouse cluster name: migrate creates replicated tables ON CLUSTER with Distributed tables over them."),
        Setting("KCW_STEP_SECONDS", _parse_positive_int, "60", "Scrape resolution of the kubecost series."),
        Setting("KCW_LOG_FORMAT", _parse_choice("text", "json"), "text", "Log lines as text or JSON."),
        Setting("KCW_LOG_LEVEL", _parse_choice("debug", "info", "warning", "error"), "info", "Log level."),
        Setting("KCW_BROKER_URL", _parse_broker_url, "memory://",
                "memory:// (one process does everything) or amqp://user:pass@host:5672/vhost (RabbitMQ)."),
        Setting("KCW_QUEUE_PREFIX", _parse_queue_prefix, "kcw", "Prefix of the queue names (kcw.jobs, kcw.dead...)."),
        Setting("KCW_PREFETCH", _parse_positive_int, "1", "Messages a consumer takes ahead of the one it processes."),
        Setting("KCW_BROKER_HEARTBEAT_SECONDS", _parse_heartbeat, "30",
                "AMQP heartbeat; sent from a thread of their own while a job runs (RabbitMQ drops a connection "
                "after two missed)."),
        Setting("KCW_MAX_RETRIES", _parse_non_negative_int, "5",
                "Retries of a transiently failing job before it is dead-lettered."),
        Setting("KCW_RETRY_DELAYS_SECONDS", _parse_delays, "30,120,600,1800",
                "Growing delays between retries (the last one repeats)."),
        Setting("KCW_MAX_RERUN_HOURS", _parse_positive_int, "744", "Longest range one job message may cover."),
        Setting("KCW_SCHEDULE_MINUTE", _parse_minute, "5", "Minute of each hour the scheduler ticks."),
        Setting("KCW_LAG_MINUTES", _parse_non_negative_int, "5",
                "An hour is due only when it closed at least this long ago (Thanos Receive ingests late)."),
        Setting("KCW_MAX_CATCHUP_HOURS", _parse_positive_int, "72", "How far back a tick looks for missing hours."),
        Setting("KCW_RECHECK_HOURS", _parse_non_negative_int, "3",
                "Recent hours whose sample count is re-checked for late data each tick."),
        Setting("KCW_SHUTDOWN_GRACE_SECONDS", _parse_positive_float, "30",
                "On SIGTERM, how long the current job may take before the process exits without acking it."),
        Setting("KCW_API_HOST", str, "127.0.0.1",
                "Address the read API and the health/metrics endpoints listen on (0.0.0.0 in a container)."),
        Setting("KCW_API_PORT", _parse_port, "8080", "Port of the read API."),
        Setting("KCW_CLUSTER_SECRET", str, "", "The Secret header clients must send to the read API."),
        Setting("KCW_RETENTION_DAYS", _parse_non_negative_int, "0",
                "Keep the hourly rows of today and this many days before it (the scheduler deletes older hours once "
                "their day is sealed in the daily tier); 0 keeps every hour."),
        Setting("KCW_DAILY_RETENTION_DAYS", _parse_non_negative_int, "0",
                "Keep this many days of the daily tier (a TTL set by migrate); 0 keeps every day. At least "
                "KCW_RETENTION_DAYS: a day outlives its hours."),
        Setting("KCW_REFUSE_BELOW", _parse_fraction, "0.9",
                "A run that finds less than this fraction of the current run's sentinel samples or rows is refused, "
                "the stored hour kept (rerun --force replaces it); 0 never refuses."),
        Setting("KCW_METRICS_PORT", _parse_non_negative_int, "9108",
                "Port of /metrics, /healthz and /readyz of run, schedule and consume (0: off)."),
        # Unset by default: a node without price series is visible (ledger, /metrics) and its pods cost 0 rather
        # than a made-up price. OpenCost's defaults, for who wants them: 0.031611, 0.004237, 0.95.
        Setting("KCW_DEFAULT_CPU_PRICE", _parse_price, "",
                "$ per core-hour for nodes without a CPU price series (OpenCost's default: 0.031611); unset: 0."),
        Setting("KCW_DEFAULT_RAM_PRICE", _parse_price, "",
                "$ per GiB-hour for nodes without a RAM price series (OpenCost's default: 0.004237); unset: 0."),
        Setting("KCW_DEFAULT_GPU_PRICE", _parse_price, "",
                "$ per GPU-hour for nodes without a GPU price series (OpenCost's default: 0.95); unset: 0."),
        Setting("KCW_OPTSCALE_CLICKHOUSE_URL", _parse_clickhouse_url, "",
                "ClickHouse holding OptScale's expenses table, for export-optscale; default: KCW_CLICKHOUSE_URL."),
        Setting("KCW_OPTSCALE_TABLE", _parse_table_name, "expenses",
                "OptScale's expenses table (table or database.table) export-optscale writes to."),
        Setting("KCW_BILL_TABLE", _parse_table_name, "focus_bill",
                "The cloud bill's FOCUS table (table or database.table) bill-load replaces billing periods of."),
        Setting("KCW_BILL_COST", _parse_bill_cost, "EffectiveCost",
                "The bill's cost column costs are reconciled with: EffectiveCost (commitments amortised) or "
                "BilledCost (as invoiced)."),
        Setting("KCW_BILL_LAG_HOURS", _parse_non_negative_int, "48",
                "An hour is reconciled with the bill only once it closed this long ago (bills arrive late)."),
    )
}


def load_config(mapping: Mapping[str, str | None], require: tuple[str, ...] = ()) -> Config:
    """Build the configuration from ``mapping`` (typically ``os.environ`` merged with flags).

    ``require`` names settings the calling command cannot do without (``KCW_THANOS_URL`` for anything that
    reads metrics). All problems are collected and raised together in one ``ConfigError``.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    for env, setting in SETTINGS.items():
        raw = mapping.get(env)
        raw = setting.default if raw is None else str(raw)
        if env in require and raw.strip() == "":
            problems.append(f"{env} is required ({setting.help})")
            values[env] = None
            continue
        if raw.strip() == "":
            values[env] = setting.empty
            continue
        try:
            values[env] = setting.parse(raw)
        except ValueError as exc:
            problems.append(f"{env}: {exc}")
            values[env] = None
    step = values.get("KCW_STEP_SECONDS")
    if isinstance(step, int) and 3600 % step:
        problems.append(f"KCW_STEP_SECONDS: must divide an hour evenly, got {step}")
    hourly, daily = values.get("KCW_RETENTION_DAYS"), values.get("KCW_DAILY_RETENTION_DAYS")
    if isinstance(hourly, int) and isinstance(daily, int) and daily and (not hourly or daily < hourly):
        problems.append(f"KCW_DAILY_RETENTION_DAYS: the daily tier must outlive the hourly rows: 0 (every day) or at "
                        f"least KCW_RETENTION_DAYS ({hourly or 'every hour'}), got {daily}")
    data_dir = os.path.abspath(values["KCW_DATA_DIR"])
    clickhouse_url = values["KCW_CLICKHOUSE_URL"] or f"chdb://{os.path.join(data_dir, 'clickhouse')}"
    optscale_url = values["KCW_OPTSCALE_CLICKHOUSE_URL"]
    if optscale_url and optscale_url.startswith("chdb:") and optscale_url != clickhouse_url:
        problems.append("KCW_OPTSCALE_CLICKHOUSE_URL: an embedded ClickHouse other than KCW_CLICKHOUSE_URL's "
                        "(chDB opens one path per process); leave it empty and name a database in "
                        "KCW_OPTSCALE_TABLE (optscale.expenses)")
    if problems:
        raise ConfigError(problems)
    kwargs = {env.removeprefix("KCW_").lower(): value for env, value in values.items()}
    kwargs.update(data_dir=data_dir, clickhouse_url=clickhouse_url)
    return Config(**kwargs)
