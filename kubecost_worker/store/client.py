"""The one way to talk to ClickHouse: connecting, classifying its failures, asking a query (its rows, its rows with
the column names, or its rows a block at a time), and the read API's clients.

One code path, clickhouse-connect, for the embedded chDB (``chdb:///path``) and a ClickHouse server
(``http(s)://...``). Every failure is classified here, once, where it enters: ``TransientError`` (retry later) or
``TerminalError`` (retrying cannot help).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any, Iterator

import clickhouse_connect
from clickhouse_connect.driver import options as driver_options
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from ..errors import TerminalError, TransientError
from . import schema

# clickhouse-connect asks each insert's data whether it is a pandas DataFrame, and imports pandas to ask on the first
# insert of a process: 0.4-0.7 s of CPU in each run that writes (a CronJob's every hour; a small tenant-hour is
# 0.04 s). The store inserts lists only and reads no DataFrame: to clickhouse-connect pandas is not installed.
if "pandas" not in sys.modules:
    driver_options.pd = driver_options.pd_time_test = None

# ClickHouse error codes that pass: the chDB path locked by another process (76), too many parts / memory
# (252, 241), timeouts (159, 209), a replica or the keeper away (242, 999), the server shutting down (210), a full
# disk (243 NOT_ENOUGH_SPACE: merges, TTLs and the operator free it), the server overloaded (202
# TOO_MANY_SIMULTANEOUS_QUERIES, 203 NO_FREE_CONNECTION, 439 CANNOT_SCHEDULE_TASK) or its shards away (279
# ALL_CONNECTION_TRIES_FAILED). Every other code is terminal: above all a query of ours rejected (62 SYNTAX_ERROR,
# also "Max query size exceeded"; 47, 53, 60, 168...). The read API answers the first kind 503, the second 500.
TRANSIENT_CODES = {76, 159, 202, 203, 209, 210, 241, 242, 243, 252, 279, 439, 999}
# Rows per block of a streamed result, and the bytes ClickHouse aims a block at: what the reader holds at once
# (a text of a 2,000-pod tenant's metric-hour is about 1.3 kB).
STREAM_BLOCK = {"max_block_size": 256, "preferred_block_size_bytes": 256 * 1024}
# Rows a read answers from one plain query before it streams the rest: a plain query is a few ms faster than a
# stream, and 10,000 rows (a 30-day kubecost_metrics answer is 7,000 texts, ~10 MB) are bounded to hold.
FIRST_PAGE_ROWS = 10_000
# Idle clients ReadClients keeps for the next requests; more are opened while more requests are in flight.
IDLE_READ_CLIENTS = 8


@contextlib.contextmanager
def classified(action: str) -> Iterator[None]:
    """Turn ClickHouse failures into ``TransientError`` / ``TerminalError``, once, here."""
    try:
        yield
    except OperationalError as exc:
        raise TransientError(f"ClickHouse unavailable while {action}: {exc}") from exc
    except DatabaseError as exc:
        code = getattr(exc, "code", None) or _code_in(str(exc))
        kind = TransientError if code in TRANSIENT_CODES or _chdb_path_busy(str(exc)) else TerminalError
        raise kind(f"ClickHouse error while {action}: {str(exc).strip()[:500]}") from exc
    except ClickHouseError as exc:
        raise TransientError(f"ClickHouse error while {action}: {str(exc).strip()[:500]}") from exc
    except (ConnectionError, TimeoutError) as exc:
        raise TransientError(f"ClickHouse unavailable while {action}: {exc}") from exc


def _chdb_path_busy(message: str) -> bool:
    """chDB reports a path locked by another process (code 76 on stderr) as a failure to open the engine."""
    return "Unable to open the chdb engine" in message and "already initialized with path" not in message


def _code_in(message: str) -> int | None:
    marker = "Code: "
    at = message.find(marker)
    if at < 0:
        return None
    digits = "".join(c for c in message[at + len(marker): at + len(marker) + 6] if c.isdigit())
    return int(digits) if digits else None


def connect(url: str) -> Any:
    """A clickhouse-connect client for ``chdb:///abs/path`` or ``http(s)://user:pass@host:port/db``."""
    with classified("connecting"):
        if url.startswith("chdb:"):
            os.makedirs(url.removeprefix("chdb://"), exist_ok=True)
        return clickhouse_connect.get_client(dsn=url)


def insert(client: Any, table: str, column_names: list[str], data: list[list], column_oriented: bool = False,
           action: str = "inserting") -> None:
    """Insert ``data`` into one of the store's tables, the columns typed by its declaration (``schema``): without
    the types clickhouse-connect would ask the server for them first, a round trip per insert."""
    with classified(action):
        client.insert(table, data, column_names=column_names, column_oriented=column_oriented,
                      column_type_names=schema.type_names(table, column_names))


def query(client: Any, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False,
          action: str = "querying") -> list[tuple]:
    """The result's rows; with ``strings_as_bytes`` String columns come as the bytes stored (JSON text
    written into a response as it is, never decoded). ``action`` names the work in a failure's message."""
    formats = {"String": "bytes"} if strings_as_bytes else None
    with classified(action):
        return client.query(sql, parameters=parameters or {}, query_formats=formats).result_rows


def query_with_names(client: Any, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]:
    """The result's column names and rows (the ``sql`` command prints both)."""
    with classified("querying"):
        result = client.query(sql, parameters=parameters or {})
    return list(result.column_names), result.result_rows


def stream(client: Any, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False) -> Iterator[tuple]:
    """The result's rows, a block at a time as ClickHouse sends them: memory bounded by one block however
    long the result. A generator: the query runs at the first ``next()``; closing it early ends the query.
    While it is open the client serves nothing else (``ReadClients`` gives each request a client of its own)."""
    formats = {"String": "bytes"} if strings_as_bytes else None
    with classified("querying"):
        with client.query_row_block_stream(sql, parameters=parameters or {}, query_formats=formats,
                                           settings=STREAM_BLOCK) as blocks:
            for block in blocks:
                yield from block


class ReadClients:
    """The read API's ClickHouse clients: one per request in flight, kept for the next ones.

    A streamed answer holds its client until its last row: with chDB a client's handle is locked for the whole
    stream (another query on it waits, or fails on the thread that opened the stream), and over HTTP the
    response is being read. So each request takes a client of its own; chDB serves any number of handles on
    the process's one engine, and a server any number of connections."""

    def __init__(self, url: str):
        self.url = url
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = connect(self.url)
        try:
            yield client
        except BaseException:
            # a stream closed early (the caller went away) or a failed query: never hand out a client that may
            # still be busy or broken
            with contextlib.suppress(Exception):
                client.close()
            raise
        with self._lock:
            if len(self._idle) < IDLE_READ_CLIENTS:
                self._idle.append(client)
                client = None
        if client is not None:
            client.close()

    def query(self, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False) -> list[tuple]:
        """The whole result, as ``query`` returns it: for answers of a bounded size."""
        with self._client() as client:
            return query(client, sql, parameters, strings_as_bytes)

    def stream(self, sql: str, parameters: dict | None = None, strings_as_bytes: bool = False) -> Iterator[tuple]:
        """The rows of ``sql`` (which must end with a total ``ORDER BY``), held at most a page at a time: the first
        ``FIRST_PAGE_ROWS`` in one plain query (most answers end there, without a stream's overhead), the rest
        streamed from that offset on a client of the request's own, held until the last row."""
        with self._client() as client:
            first = query(client, f"{sql} LIMIT {FIRST_PAGE_ROWS + 1}", parameters, strings_as_bytes)
        yield from first[:FIRST_PAGE_ROWS]
        if len(first) > FIRST_PAGE_ROWS:
            with self._client() as client:
                yield from stream(client, f"{sql} OFFSET {FIRST_PAGE_ROWS} ROWS", parameters, strings_as_bytes)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                client.close()
