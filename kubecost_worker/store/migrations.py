"""Versioned SQL migrations: ``migrations/NNNN_name.sql``, applied in order, tracked in ``schema_migrations``.

Each file holds idempotent statements separated by ``;``: DDL (``IF NOT EXISTS``), and backfills
(``INSERT ... SELECT``) that skip what their target already holds (``NOT IN``). The runner records ``started``
before a migration and ``applied`` after it, and refuses to go on when the files have a gap, when an applied
migration's file changed or disappeared, or when a migration was started but not finished (a crash
mid-migration): that state needs a look (``migrate --resume`` re-runs it, which idempotent statements allow).

Each statement runs as the store installs it (``schema.as_installed``: a view's join on the current runs gets the
current-run rule in the place of the name), in its cluster form with a cluster (``cluster.render``). The schema the
migrations lead to is declared in ``store/schema/``.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TerminalError
from .client import classified
from . import schema
from .cluster import local_table, render

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
TRACKING_DDL = schema.declaration("schema_migrations")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def statements(self) -> list[str]:
        return [s.strip() for s in schema.without_comments(self.sql).split(";") if s.strip()]


def migrations_dir() -> Path:
    """``KCW_MIGRATIONS_DIR``, else the checkout's ``migrations/``, else the installed copy."""
    candidates = [os.environ.get("KCW_MIGRATIONS_DIR"), Path(__file__).resolve().parents[2] / "migrations",
                  Path(sys.prefix) / "share" / "kubecost-worker" / "migrations"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise TerminalError("no migrations directory found (set KCW_MIGRATIONS_DIR)")


def load_migrations(directory: Path) -> list[Migration]:
    found = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = FILE_NAME.match(path.name)
        if not match:
            raise TerminalError(f"migration file name not of the form NNNN_name.sql: {path.name}")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise TerminalError(f"migrations have a gap: expected {expected:04d}, found {migration.version:04d}")
    return found


def applied_state(client: Any, cluster: str | None = None, create: bool = False) -> dict[int, tuple[str, str]]:
    """version -> (status, checksum) from the latest tracking row of each version; ``create`` makes the
    tracking table first (``migrate`` does; readiness probes only read)."""
    with classified("reading schema_migrations"):
        if create:
            for statement in render(TRACKING_DDL.strip(), cluster):
                client.command(statement)
        elif not client.command("EXISTS TABLE schema_migrations"):
            return {}
        rows = client.query(
            "SELECT version, argMax(status, at), argMax(checksum, at) FROM schema_migrations GROUP BY version"
        ).result_rows
    return {int(v): (str(status), checksum) for v, status, checksum in rows}


def pending(client: Any, migrations: list[Migration], resume: bool = False, cluster: str | None = None,
            create: bool = False) -> list[Migration]:
    """The migrations still to apply; raises ``TerminalError`` on any inconsistent state."""
    state = applied_state(client, cluster, create)
    by_version = {m.version: m for m in migrations}
    for version, (status, checksum) in sorted(state.items()):
        migration = by_version.get(version)
        if migration is None:
            raise TerminalError(f"migration {version:04d} is recorded in the database but its file is missing")
        if checksum != migration.checksum:
            raise TerminalError(f"migration {version:04d}_{migration.name} changed after it was applied")
        if status == "started" and not resume:
            raise TerminalError(f"migration {version:04d}_{migration.name} was started but never finished; "
                                "check the schema, then run `kubecost-worker migrate --resume`")
    applied = sorted(v for v, (status, _) in state.items() if status == "applied")
    if applied != list(range(1, len(applied) + 1)):
        raise TerminalError(f"applied migrations have a gap: {applied}")
    return [m for m in migrations if state.get(m.version, ("", ""))[0] != "applied"]


def migrate(client: Any, directory: Path | None = None, resume: bool = False,
            cluster: str | None = None) -> list[str]:
    """Apply every pending migration in order; returns the names applied (empty when up to date).

    With ``cluster``, each statement runs in its cluster form (``store/cluster.py``)."""
    migrations = load_migrations(directory or migrations_dir())
    done = []
    for migration in pending(client, migrations, resume=resume, cluster=cluster, create=True):
        _track(client, migration, "started")
        for statement in migration.statements:
            for rendered in render(schema.as_installed(statement), cluster):
                with classified(f"applying migration {migration.version:04d}_{migration.name}"):
                    client.command(rendered)
        _track(client, migration, "applied")
        done.append(f"{migration.version:04d}_{migration.name}")
    return done


RETAINED_TABLES = schema.retained_tables()  # hourly: the scheduler expires their hours (cleanup.expire_hours)
DAILY_TABLES = schema.daily_tables()


def apply_retention(client: Any, daily_days: int, cluster: str | None = None) -> list[str]:
    """The retention TTLs: ``daily_days`` on every table keyed by day (``KCW_DAILY_RETENTION_DAYS``; 0 removes it),
    none on the tables keyed by hour, whose hours the scheduler deletes only once their day is sealed in the daily
    tier (a TTL an older version set there would drop hours whatever their day's state). Idempotent; returns the
    tables changed."""
    with classified("reading the tables' TTLs"):
        with_ttl = {name.removesuffix("_local"): engine for name, engine in client.query(
            "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
            "AND name IN {names:Array(String)} AND match(engine_full, ' TTL ')",
            parameters={"names": [f"{t}_local" if cluster else t for t in (*RETAINED_TABLES, *DAILY_TABLES)]}
        ).result_rows}
    ttl = f"TTL day + toIntervalDay({int(daily_days)})"
    changes = {table: "REMOVE TTL" for table in RETAINED_TABLES if table in with_ttl}
    for table in DAILY_TABLES:
        if daily_days > 0 and not re.search(rf"{re.escape(ttl)}(?!\d)", with_ttl.get(table, "")):
            changes[table] = f"MODIFY {ttl}"  # only when it changes: a TTL set anew rewrites the parts
        elif daily_days <= 0 and table in with_ttl:
            changes[table] = "REMOVE TTL"
    for table, change in changes.items():
        with classified(f"setting the retention of {table}"):
            client.command(f"ALTER TABLE {local_table(table, cluster)} {change}")
    return list(changes)


def _track(client: Any, migration: Migration, status: str) -> None:
    # stamped by the server: a migration started by one process and resumed by another is ordered by one clock
    with classified("recording a migration"):
        client.command("INSERT INTO schema_migrations (version, name, checksum, status, at) SELECT {version:UInt32}, "
                       "{name:String}, {checksum:String}, {status:String}, now64(6)",
                       parameters={"version": migration.version, "name": migration.name,
                                   "checksum": migration.checksum, "status": status})


def is_up_to_date(client: Any, directory: Path | None = None) -> bool:
    migrations = load_migrations(directory or migrations_dir())
    try:
        return not pending(client, migrations)
    except TerminalError:
        return False
