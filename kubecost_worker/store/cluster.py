"""ClickHouse cluster mode (``KCW_CLICKHOUSE_CLUSTER=<name>``): the same migrations, rendered for a cluster.

Each ``CREATE TABLE x ... ENGINE = MergeTree`` (or ``ReplacingMergeTree``) becomes a replicated local table
``x_local ON CLUSTER`` and a Distributed table ``x`` over it, sharded by tenant (``cityHash64(cloud_account_id)``): a
tenant's rows, metric samples and ledger live on one shard, so the ``*_current`` views can join them shard-locally
(``distributed_product_mode = 'local'``). Views and the materialized views are created ``ON CLUSTER``; the
materialized views read and write the local tables, where inserts land (and a materialized view's new query,
``MODIFY QUERY``, reads them too). Column changes (``ALTER TABLE``) go to both, codecs to the local tables only, and
projections too (a Distributed table has no parts to keep one in).
Deletes and TTL changes go to the local tables ``ON CLUSTER``. Users and the code keep using the plain names.
Backfills (``INSERT ... SELECT``) run on every shard at once, each from and into its local tables
(``parallel_distributed_insert_select = 2``), the ``NOT IN`` guard on the local target too.
"""

from __future__ import annotations

import re

_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\s*(\(.*\))\s*ENGINE = (|Replacing)MergeTree\b(.*)$",
                           re.S)
_CREATE_VIEW = re.compile(r"^(CREATE VIEW IF NOT EXISTS|CREATE OR REPLACE VIEW) (\w+) AS\b(.*)$", re.S)
_CREATE_MV = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS\b(.*)$", re.S)
_FROM = re.compile(r"\bFROM (\w+)")
_INSERT_SELECT = re.compile(r"^INSERT INTO \w+\b.*\bSELECT\b", re.S)
_MODIFY_QUERY = re.compile(r"^ALTER TABLE (\w+) MODIFY QUERY\b(.*)$", re.S)
_ALTER_TABLE = re.compile(r"^ALTER TABLE (\w+)\s+(.*)$", re.S)
_PROJECTION = re.compile(r"^ALTER TABLE (\w+)\s+((?:ADD|MATERIALIZE|DROP) PROJECTION\b.*)$", re.S)
_CODEC = re.compile(r"\s*CODEC\([^()]*(\([^()]*\)[^()]*)*\)")


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quoted_table(table: str) -> str:
    """``table`` or ``database.table``, each part quoted (``quote_identifier``)."""
    return ".".join(quote_identifier(part) for part in table.split("."))


def render(statement: str, cluster: str | None) -> list[str]:
    """The statements to run for one migration statement: itself without a cluster, the cluster form with."""
    if not cluster:
        return [statement]
    on = f"ON CLUSTER {quote_identifier(cluster)}"
    if match := _CREATE_TABLE.match(statement):
        name, columns, kind, rest = match.groups()
        sharding = "cityHash64(cloud_account_id)" if "cloud_account_id" in columns else "rand()"
        return [
            f"CREATE TABLE IF NOT EXISTS {name}_local {on} {columns}\n"
            f"ENGINE = Replicated{kind}MergeTree('/clickhouse/tables/{{shard}}/{{database}}/{name}_local', "
            f"'{{replica}}'){rest}",
            f"CREATE TABLE IF NOT EXISTS {name} {on} AS {name}_local\n"
            f"ENGINE = Distributed({quote_identifier(cluster)}, currentDatabase(), {name}_local, {sharding})",
        ]
    if match := _CREATE_MV.match(statement):
        name, target, select = match.groups()
        local_select = _FROM.sub(lambda m: f"FROM {m.group(1)}_local", select)
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} {on} TO {target}_local AS{local_select}"]
    if match := _CREATE_VIEW.match(statement):
        create, name, select = match.groups()
        return [f"{create} {name} {on} AS{select.rstrip()}\n"
                "SETTINGS distributed_product_mode = 'local'"]
    if match := _MODIFY_QUERY.match(statement):
        # a materialized view's new SELECT: the view is ON CLUSTER under its own name and reads the local tables,
        # as when it was created
        name, select = match.groups()
        local_select = _FROM.sub(lambda m: f"FROM {m.group(1)}_local", select)
        return [f"ALTER TABLE {name} {on} MODIFY QUERY{local_select}"]
    if match := _PROJECTION.match(statement):
        name, clauses = match.groups()
        return [f"ALTER TABLE {name}_local {on} {clauses}"]
    if match := _ALTER_TABLE.match(statement):
        # the local tables hold the data; the Distributed table over them gets the same columns, without codecs
        name, clauses = match.groups()
        return [f"ALTER TABLE {name}_local {on} {clauses}", f"ALTER TABLE {name} {on} {_CODEC.sub('', clauses)}"]
    if _INSERT_SELECT.match(statement):
        return [f"{statement}\nSETTINGS parallel_distributed_insert_select = 2, distributed_product_mode = 'local', "
                "insert_distributed_sync = 1"]
    raise ValueError(f"no cluster form for: {statement[:80]}")


def local_table(table: str, cluster: str | None) -> str:
    """Where deletes and TTL changes go: ``x_local ON CLUSTER c`` in cluster mode, ``x`` otherwise."""
    return f"{table}_local ON CLUSTER {quote_identifier(cluster)}" if cluster else table
