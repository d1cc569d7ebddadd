"""The cloud bill in ClickHouse: FOCUS 1.0 exports loaded into ``focus_bill`` (``KCW_BILL_TABLE``) by ``bill-load``.

ClickHouse reads the files in its own input formats (``CSVWithNames``, mapping the header's names to the table's
columns; ``Parquet``): a local file is sent to the server as it is (clickhouse-connect's raw insert, the same for chDB
and a server; a ``.gz`` file decompressed on the way), a URL is read by the server itself (``url()``, ``s3()`` with
the server's own credentials). Every file of one load goes into a staging table made ``AS`` the bill table; the
staging table is checked, then each billing period it holds (a partition: period start, provider, billing account)
replaces the bill table's with ``REPLACE PARTITION``, and the staging table is dropped. A file that fails anywhere
before the replacement changes nothing. Just before, the periods are indexed by the resources they bill
(``reconcile.index_bill``), for the reconciliation to find them.

How a bad line fails the load: the staging table's columns get a ``DEFAULT`` that raises (``throwIf``), so a value
the format leaves to the default is refused rather than read as 0 or '': a column FOCUS requires that is missing,
empty or NULL, and in Parquet any FOCUS column missing from the file. A CSV header is checked by its names first
(an unquoted empty field is NULL in a nullable column, so there the default cannot tell a missing column apart).
A quoted empty number (``""``) is the one value ClickHouse's CSV parser reads as 0 rather than refusing.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import os
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit

from clickhouse_connect.driver.exceptions import DatabaseError

from ..errors import TerminalError
from ..hours import utc
from . import schema
from .client import classified
from .cluster import quoted_table
from .reconcile import index_bill

DECLARED = "focus_bill"
FORMATS = {"csv": "CSVWithNames", "parquet": "Parquet"}
# the load's own columns, and Id: exports carry it beside the spec's columns, some do not
LOAD_COLUMNS = ("load_id", "loaded_at")
OPTIONAL_COLUMNS = ("Id",)
FOCUS_COLUMNS = tuple(c for c in schema.columns(DECLARED) if c.name not in (*LOAD_COLUMNS, *OPTIONAL_COLUMNS))
CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")  # FOCUS 1.0's allowed values
REMOTE_FUNCTIONS = {"http": "url", "https": "url", "s3": "s3"}
# a load refuses a file past this many bytes (``bill-load --max-bytes`` raises it for a larger export)
MAX_BYTES = 10 << 30
HEADER_BYTES = 1 << 20  # a FOCUS 1.0 header is under 1 kB; a first line longer than this is no header
CHUNK_BYTES = 1 << 20
LOAD_SETTINGS = {
    "input_format_with_names_use_header": 1,
    "input_format_skip_unknown_fields": 1,  # provider extensions (x_...) are not kept
    "input_format_defaults_for_omitted_fields": 1,
    "input_format_null_as_default": 1,  # NULL in a required column takes its raising default
    "input_format_csv_empty_as_default": 1,  # so does an unquoted empty field
    "format_csv_null_representation": "NULL",  # FOCUS CSV writes NULL as a bare word
    "date_time_input_format": "best_effort",  # the sample's "2024-09-01 00:00:00" and ISO 8601 with a zone
}
# the size and header asked of a URL before the load: an unreachable server fails in seconds, not after ClickHouse's
# default ten tries with backoff (minutes); the load itself keeps the defaults
PROBE_SETTINGS = {"http_max_tries": 2}
_PARTITION_ID = re.compile(r"^[0-9A-Za-z_-]+$")


class BillRejected(TerminalError):
    """A bill file that cannot be loaded as it is (its header, a value, its size): nothing was changed."""


@dataclass(frozen=True)
class BillSource:
    """One file of a load: a local path or a URL the server reads, and its format (``csv``, ``parquet``)."""

    location: str
    fmt: str

    @property
    def function(self) -> str | None:
        """The table function the server reads it with; None for a local file."""
        return REMOTE_FUNCTIONS.get(urlsplit(self.location).scheme.lower()) if "://" in self.location else None


def source_of(argument: str, fmt: str | None = None) -> BillSource:
    """The source ``argument`` names, its format ``fmt`` or its name's extension; ``ValueError`` when it names none."""
    scheme = urlsplit(argument).scheme.lower() if "://" in argument else ""
    if scheme and scheme not in REMOTE_FUNCTIONS:
        raise ValueError(f"{argument}: not a local file, http(s):// or s3:// URL")
    if not scheme and not os.path.isfile(argument):
        raise ValueError(f"{argument}: no such file")
    if fmt is None:
        name = urlsplit(argument).path if scheme else argument
        fmt = {".csv": "csv", ".parquet": "parquet"}.get(os.path.splitext(name.removesuffix(".gz"))[1].lower())
        if fmt is None:
            raise ValueError(f"{argument}: cannot tell the format from the name: give --format csv or parquet")
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected csv or parquet")
    return BillSource(argument, fmt)


@dataclass(frozen=True)
class LoadedPeriod:
    provider: str
    billing_account: str
    start: int  # BillingPeriodStart, unix seconds
    lines: int

    def label(self) -> str:
        return f"{self.provider} {self.billing_account} {utc(self.start):%Y-%m-%d} ({_lines(self.lines)})"


@dataclass(frozen=True)
class BillLoad:
    load_id: uuid.UUID
    periods: tuple[LoadedPeriod, ...]

    def line(self) -> str:
        lines = _lines(sum(p.lines for p in self.periods))
        return (f"bill-load: replaced {len(self.periods)} billing periods, {lines}: "
                f"{'; '.join(p.label() for p in self.periods)}")


def load_bill(client: Any, sources: list[BillSource], table: str = DECLARED, max_bytes: int = MAX_BYTES) -> BillLoad:
    """Load ``sources`` as one bill: every billing period they hold replaces that period in ``table``, each in one
    atomic step; other periods are left alone. ``BillRejected`` for a file that cannot be loaded (nothing changed),
    ``TransientError`` when ClickHouse is away."""
    for source in sources:
        _check_size(client, source, max_bytes)
        if source.fmt == "csv":
            _check_header(client, source)
    load_id = uuid.uuid4()
    staging = _create_staging(client, table, load_id)
    try:
        for source in sources:
            _load_into(client, staging, source, max_bytes)
        periods = _checked_periods(client, staging, ", ".join(s.location for s in sources))
        index_bill(client, staging)  # before the replace: a period indexed and not replaced yet hides nothing
        _replace(client, table, staging)
    except BaseException:
        with contextlib.suppress(Exception):  # the load's own failure is the one to report
            _drop(client, staging)
        raise
    _drop(client, staging)
    return BillLoad(load_id, periods)


def _drop(client: Any, staging: str) -> None:
    with classified("dropping the bill's staging table"):
        client.command(f"DROP TABLE IF EXISTS {quoted_table(staging)}")


def _create_staging(client: Any, table: str, load_id: uuid.UUID) -> str:
    """A table made ``AS`` the bill table (what REPLACE PARTITION requires), its load id the default."""
    staging = f"{table}_load_{secrets.token_hex(6)}"
    with classified("creating the bill's staging table"):
        if not client.command(f"EXISTS TABLE {quoted_table(table)}"):
            raise TerminalError(f"no table {table} (KCW_BILL_TABLE): run `kubecost-worker migrate` first")
        client.command(f"CREATE TABLE {quoted_table(staging)} AS {quoted_table(table)}")
        client.command(f"ALTER TABLE {quoted_table(staging)} MODIFY COLUMN load_id DEFAULT toUUID('{load_id}')")
    return staging


def _raising_defaults(fmt: str) -> str:
    """The staging table's defaults for a file of ``fmt``: raising for what must not be left to a default."""
    clauses = []
    for column in FOCUS_COLUMNS:
        if not column.definition.startswith(("Nullable", "LowCardinality(Nullable")):
            reason = f"{column.name} has no value on a line (FOCUS requires one) or the file has no such column"
        elif fmt == "parquet":
            reason = f"the file has no column {column.name}"
        else:
            clauses.append(f"MODIFY COLUMN {column.name} DEFAULT NULL")
            continue
        # a condition on the rows, never a constant: nothing may fold it before a row asks for the default
        clauses.append(f"MODIFY COLUMN {column.name} DEFAULT throwIf(rowNumberInBlock() >= 0, '{reason}')")
    return ", ".join(clauses)


def _load_into(client: Any, staging: str, source: BillSource, max_bytes: int) -> None:
    """The lines of ``source`` into the staging table, read by the server in ClickHouse's own input format."""
    with classified("preparing the bill's staging table"):
        client.command(f"ALTER TABLE {quoted_table(staging)} {_raising_defaults(source.fmt)}")
    with _rejecting(source), classified(f"loading {source.location}"):
        if source.function is None:
            stream = _LocalStream(source.location, max_bytes)
            try:
                client.raw_insert(staging, None, stream.chunks(), settings=LOAD_SETTINGS, fmt=FORMATS[source.fmt])
            finally:
                stream.check()
        else:
            # SELECT *: the structure is the staging table's (use_structure_from_insertion_table_in_table_functions),
            # its raising defaults included
            client.command(f"INSERT INTO {quoted_table(staging)} SELECT * FROM "
                           f"{source.function}({{location:String}}, '{FORMATS[source.fmt]}')",
                           parameters={"location": source.location}, settings=LOAD_SETTINGS)


class _LocalStream:
    """A local file's bytes as the server is sent them (a ``.gz`` file decompressed on the way), counted: a file
    that grows past ``max_bytes`` as it is read is refused, whatever its size on disk said."""

    def __init__(self, path: str, max_bytes: int):
        self.path, self.max_bytes, self.read = path, max_bytes, 0

    def chunks(self) -> Iterator[bytes]:
        with _open_local(self.path) as file:
            while chunk := file.read(CHUNK_BYTES):
                self.read += len(chunk)
                self.check()
                yield chunk

    def check(self) -> None:
        # also called after the insert: a transport that wraps the generator's own error loses its message
        if self.read > self.max_bytes:
            raise BillRejected(f"{self.path}: more than {self.max_bytes:,} bytes as read, the load's limit")


def _open_local(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _check_size(client: Any, source: BillSource, max_bytes: int) -> None:
    """Refused before anything is read: a file larger than ``max_bytes``, or an empty one."""
    if source.function is None:
        size = os.path.getsize(source.location)
    else:
        # the One format reads no data: the files' sizes as the server lists them (a glob may name several); a
        # file whose size the server cannot tell (a response without Content-Length) is not held to the limit
        with _rejecting(source), classified(f"reading the size of {source.location}"):
            files, unknown, size = client.query(
                f"SELECT count(), countIf(_size IS NULL), sum(ifNull(_size, 0)) FROM "
                f"{source.function}({{location:String}}, 'One')", parameters={"location": source.location},
                settings=PROBE_SETTINGS).result_rows[0]
        if not files:
            raise BillRejected(f"{source.location}: no such file")
        size = None if unknown and not size else size
    if size is not None and size > max_bytes:
        raise BillRejected(f"{source.location}: {size:,} bytes, more than the load's limit of {max_bytes:,}")
    if size == 0:
        raise BillRejected(f"{source.location}: the file is empty")


def _check_header(client: Any, source: BillSource) -> None:
    """Every FOCUS column is named in the CSV header (in any order; other columns are skipped)."""
    line = _first_line(client, source)
    names = set(next(csv.reader([line.lstrip("\ufeff")]), []))
    missing = [c.name for c in FOCUS_COLUMNS if c.name not in names]
    if len(missing) == len(FOCUS_COLUMNS):
        raise BillRejected(f"{source.location}: the first line names no FOCUS column: not a FOCUS CSV header")
    if missing:
        raise BillRejected(f"{source.location}: the header lacks the FOCUS columns {', '.join(missing)}")


def _first_line(client: Any, source: BillSource) -> str:
    if source.function is not None:
        with _rejecting(source), classified(f"reading the header of {source.location}"):
            rows = client.query(f"SELECT line FROM {source.function}({{location:String}}, 'LineAsString') LIMIT 1",
                                parameters={"location": source.location}, settings=PROBE_SETTINGS).result_rows
        return rows[0][0] if rows else ""
    with _open_local(source.location) as file:
        try:
            line = file.readline(HEADER_BYTES)
        except (OSError, EOFError) as exc:
            raise BillRejected(f"{source.location}: unreadable: {exc}") from exc
    if len(line) >= HEADER_BYTES and not line.endswith(b"\n"):
        raise BillRejected(f"{source.location}: a first line longer than {HEADER_BYTES:,} bytes is no FOCUS header")
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


def _checked_periods(client: Any, staging: str, names: str) -> tuple[LoadedPeriod, ...]:
    """The billing periods the staging table holds, once its lines pass FOCUS's rules that a parser cannot see."""
    problems = {
        "without a ProviderName or BillingAccountId": "ProviderName = '' OR BillingAccountId = ''",
        "whose BillingPeriodEnd is not after BillingPeriodStart": "BillingPeriodEnd <= BillingPeriodStart",
        "whose ChargePeriodEnd is before ChargePeriodStart": "ChargePeriodEnd < ChargePeriodStart",
        f"whose ChargeCategory is none of {', '.join(CHARGE_CATEGORIES)}":
            f"ChargeCategory NOT IN {CHARGE_CATEGORIES!r}",
        "whose Tags are no JSON object":
            "Tags IS NOT NULL AND NOT (isValidJSON(Tags) AND JSONType(Tags) = 'Object')",
    }
    counts = ", ".join(f"countIf({condition})" for condition in problems.values())
    with classified("checking the bill"):
        found = client.query(f"SELECT {counts} FROM {quoted_table(staging)}").result_rows[0]
        periods = client.query(
            f"SELECT ProviderName, BillingAccountId, toUnixTimestamp(BillingPeriodStart), count(), "
            f"uniqExact(BillingPeriodEnd) FROM {quoted_table(staging)} "
            "GROUP BY ProviderName, BillingAccountId, BillingPeriodStart ORDER BY ALL").result_rows
    for (problem, _), count in zip(problems.items(), found):
        if count:
            raise BillRejected(f"{names}: {_lines(count)} {problem}")
    if not periods:
        raise BillRejected(f"{names}: no bill lines")
    ambiguous = [f"{provider} {account}" for provider, account, _, _, ends in periods if ends > 1]
    if ambiguous:
        raise BillRejected(f"{names}: billing periods with more than one BillingPeriodEnd: {', '.join(ambiguous)}")
    return tuple(LoadedPeriod(provider, account, int(start), int(lines))
                 for provider, account, start, lines, _ in periods)


def _replace(client: Any, table: str, staging: str) -> None:
    """Each of the staging table's partitions replaces the bill table's: one atomic step per billing period."""
    database, _, name = staging.rpartition(".")
    with classified("replacing the bill's periods"):
        ids = client.query("SELECT DISTINCT partition_id FROM system.parts WHERE active AND table = {name:String} AND "
                           "database = if({database:String} = '', currentDatabase(), {database:String}) ORDER BY 1",
                           parameters={"name": name, "database": database}).result_rows
        for partition_id, in ids:
            if not _PARTITION_ID.match(partition_id):
                raise TerminalError(f"unexpected partition id {partition_id!r} of {staging}")
            client.command(f"ALTER TABLE {quoted_table(table)} REPLACE PARTITION ID '{partition_id}' "
                           f"FROM {quoted_table(staging)}")


@contextlib.contextmanager
def _rejecting(source: BillSource) -> Iterator[None]:
    """A terminal failure while ClickHouse reads ``source`` is the file's: ``BillRejected`` with ClickHouse's reason
    in one line. Transient ones (ClickHouse away) pass as they are."""
    try:
        yield
    except BillRejected:
        raise
    except TerminalError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, DatabaseError) else exc
        raise BillRejected(f"{source.location}: {one_line_reason(str(cause))}") from exc


_THROWN = re.compile(r"DB::Exception: ((?:(?!DB::Exception).)*?): while executing 'FUNCTION throwIf", re.S)
_ROW = re.compile(r"\(at row (\d+)\)")
_COLUMN = re.compile(r"name: (\S+?),\s+type: (.+?),\s+parsed text: ", re.M)
# what the parser found: "ERROR: garbage after ..." on a line of its own, or the error after a value's "ERROR"
_DETAIL = re.compile(r"^ERROR: (.+)$|ERROR\n(?:Code: \d+\. )?(?:DB::Exception: )?(.+?)(?: \(\w+\))?"
                     r"(?: \(version [^)]*\))?$", re.M)
_PREFIX = re.compile(r"^(?:(?:Code: \d+\. )?DB::Exception: )+")


def one_line_reason(message: str) -> str:
    """ClickHouse's error about an input file in one line: what our raising default said, or the row, column and
    what its parser found there, or the error's first line."""
    if thrown := _THROWN.search(message):
        return thrown.group(1).strip()
    head = _PREFIX.sub("", message.strip().splitlines()[0] if message.strip() else "unknown error")
    head = re.split(r": \(at row | \(version |: While executing|:? \(in file/uri |, body length: ", head)[0].strip(" :")
    row, detail = _ROW.search(message), _DETAIL.search(message)
    columns = _COLUMN.findall(message[:detail.start()] if detail else message)
    if row and columns:
        name, type_name = columns[-1]
        what = (detail.group(1) or detail.group(2)).strip() if detail else head
        return f"row {row.group(1)}, {name} ({type_name}): {_clipped(what)}"
    return _clipped(head)


def _clipped(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _lines(count: int) -> str:
    return f"{count:,} line" + ("" if count == 1 else "s")
