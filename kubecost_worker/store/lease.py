"""A lease that ClickHouse itself holds: at most one holder of a name at a time, across processes and hosts, timed
by the server's clock alone.

Each taking of a lease is an epoch: a row ``(name, epoch, holder)`` inserted with ClickHouse's insert deduplication
keyed by the name and epoch, so of all the contenders for epoch n exactly one row is stored and each of them reads
back who won. A holder ends its epoch with a ``released`` row. An epoch neither released nor younger than the
lease's seconds (``now64()`` on the server against the server-stamped claim) has expired and the next one may be
taken: a holder killed mid-work holds the others up for one lease at most. Before it writes, a holder checks that
its epoch is still the latest and alive (``Lease.check``), so a holder that outlived its lease writes nothing.

The table lives on the server the client reaches. Deduplication of a plain MergeTree is per server: behind a load
balancer over several replicas the lease table must be one server's (or a ReplicatedMergeTree, which deduplicates
through Keeper).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import TransientError

# Inserts whose tokens the table remembers: a contender's claim is compared with the claims made since, and a lease
# table sees two inserts per holding.
DEDUPLICATION_WINDOW = 10_000
POLL_SECONDS = 0.2
DDL = ("CREATE TABLE IF NOT EXISTS {table} (name String, epoch UInt64, holder String, seconds Float64, "
       "released UInt8 DEFAULT 0, at DateTime64(6, 'UTC') DEFAULT now64(6)) ENGINE = MergeTree ORDER BY (name, epoch) "
       f"SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}")
COLUMNS = ["name", "epoch", "holder", "seconds", "released"]


class LeaseBusy(TransientError):
    """Another holder kept the lease for longer than this one would wait."""


class LeaseLost(TransientError):
    """The lease expired (or was taken over) before the holder wrote: it wrote nothing."""


@dataclass(frozen=True)
class Epoch:
    epoch: int
    holder: str
    seconds: float  # how long its holder took it for
    released: bool
    age_seconds: float

    @property
    def free(self) -> bool:
        return self.released or self.age_seconds >= self.seconds


def create_table(client: Any, table: str) -> None:
    client.command(DDL.format(table=table))


def latest_epoch(client: Any, table: str, name: str) -> Epoch | None:
    rows = client.query(
        f"SELECT epoch, anyIf(holder, released = 0), maxIf(seconds, released = 0), max(released), "
        f"dateDiff('microsecond', minIf(at, released = 0), now64(6)) / 1e6 FROM {table} "
        "WHERE name = {name:String} GROUP BY epoch ORDER BY epoch DESC LIMIT 1",
        parameters={"name": name}).result_rows
    if not rows:
        return None
    epoch, holder, seconds, released, age = rows[0]
    return Epoch(int(epoch), holder, float(seconds), bool(released), float(age))


@dataclass(frozen=True)
class Lease:
    client: Any
    table: str
    name: str
    holder: str
    epoch: int
    seconds: float

    def check(self) -> None:
        """Raise ``LeaseLost`` unless this lease is still the name's latest epoch, unreleased and unexpired."""
        latest = latest_epoch(self.client, self.table, self.name)
        if latest is None or latest.epoch != self.epoch or latest.free:
            raise LeaseLost(f"the lease {self.name!r} expired or was taken over before the write; nothing written")

    def release(self) -> None:
        self.client.insert(self.table, [[self.name, self.epoch, self.holder, self.seconds, 1]], column_names=COLUMNS,
                           settings={"insert_deduplication_token": f"{self.name}:{self.epoch}:released"})


def acquire(client: Any, table: str, name: str, seconds: float, wait_seconds: float) -> Lease:
    """Take the lease ``name`` for ``seconds`` (server time), waiting up to ``wait_seconds`` for its holder (an
    expired holding is judged by the seconds its holder took it for)."""
    holder = str(uuid.uuid4())
    deadline = time.monotonic() + wait_seconds
    while True:
        latest = latest_epoch(client, table, name)
        if latest is None or latest.free:
            epoch = (latest.epoch if latest else 0) + 1
            client.insert(table, [[name, epoch, holder, seconds, 0]], column_names=COLUMNS,
                          settings={"insert_deduplication_token": f"{name}:{epoch}"})
            won = latest_epoch(client, table, name)
            if won is not None and won.epoch == epoch and won.holder == holder:
                return Lease(client, table, name, holder, epoch, seconds)
            continue  # another contender took this epoch: look again
        if time.monotonic() >= deadline:
            raise LeaseBusy(f"the lease {name!r} has been held by another process for {latest.age_seconds:.0f} s "
                            f"(it expires after {latest.seconds:.0f} s); try again later")
        time.sleep(POLL_SECONDS)
