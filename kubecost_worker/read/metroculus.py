"""The read layer's SQL: every value from the request is a bound parameter, never part of the SQL text.

A window ``[start_date, end_date)`` selects the hours that overlap it: from the hour holding ``start_date`` to
the last hour starting before ``end_date``; an empty window (``start_date == end_date``) overlaps none.
Timestamps returned are unix seconds of the hour (or day) start.

``reader`` is the sink's ``ReadClients``: ``query`` for answers of a bounded size, ``stream`` for answers that grow
with the window (a year of a large tenant's ``kubecost_metrics`` is about 130 MB). Streamed answers are
``RawJson``: JSON text written piece by piece as the rows arrive, so the server holds one block of rows at a time
whatever the window.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any, Iterable, Iterator

from ..model.rows import IDLE
from ..hours import HOUR

IN_WINDOW = ("cloud_account_id = {tenant:String} AND hour >= toStartOfHour(toDateTime({start:Int64}, 'UTC')) "
              "AND hour < toDateTime({end:Int64}, 'UTC') AND {start:Int64} < {end:Int64}")
# The rows of the current run of each tenant-hour (k8s_expense_current_runs, the one definition), with the run
# lookup narrowed to the tenant and window first: a few hundred run ids instead of the whole ledger.
WINDOW = IN_WINDOW + " AND run_id IN (SELECT run_id FROM k8s_expense_current_runs WHERE " + IN_WINDOW + ")"
NAMESPACE_ROLLUP = "k8s_expenses_namespace_hourly"
SAVINGS = {"cpu_savings": "kubecost_savings_cpu_allocation", "memory_savings": "kubecost_savings_memory_allocation_bytes"}
# CloudTuner's breakdown object of kubecost_cluster_costs, in the order its consumer documents it.
BREAKDOWN = ("management_cost", "load_balancer_cost", "network_internet_cost", "network_region_cost",
             "network_zone_cost")
# A per-hour or per-day breakdown of k8s_expenses itself is asked in pieces of about this many stored rows (cut at
# the step's boundaries, sized from the run ledger's row counts): each piece is grouped and sorted alone, so what
# ClickHouse holds, like the server, follows the piece and not the window (a year of a 2,000-pod tenant per pod
# and hour is 20 million groups).
ROWS_PER_PIECE = 200_000
# Hours are stored as DateTime (unix seconds 0 to 2^32 - 1): a window reaching past either end selects what is
# stored inside it. Metroculus sets no limit on the window; the answer is bounded by the data stored.
FIRST_SECOND, LAST_SECOND = 0, 2**32 - 1


def window_pieces(reader, tenant: str, start: int, end: int, step: str,
                  daily_rows: dict[int, int] | None = None) -> list[tuple[int, int]]:
    """``[from, to)`` sub-windows of the window, in order, covering its stored hours and the days ``daily_rows``
    names (day start -> its rows in the daily tier): whole steps (hours or days) of about ``ROWS_PER_PIECE`` rows
    each, as the ledger and the daily tier count them."""
    params = bound_params(tenant, start, end)
    size = HOUR if step == "hour" else 24 * HOUR
    rows_per_step: dict[int, int] = {}
    for hour, rows in reader.query(f"SELECT toUnixTimestamp(hour), rows_written FROM k8s_expense_current_run_records "
                                   f"WHERE {IN_WINDOW} ORDER BY hour", params):
        rows_per_step[hour - hour % size] = rows_per_step.get(hour - hour % size, 0) + rows
    for day, rows in (daily_rows or {}).items():
        rows_per_step[day - day % size] = rows_per_step.get(day - day % size, 0) + rows
    pieces: list[tuple[int, int]] = []
    held = 0
    for first in sorted(rows_per_step):
        if pieces and held + rows_per_step[first] <= ROWS_PER_PIECE:
            pieces[-1] = (pieces[-1][0], first + size)
            held += rows_per_step[first]
        else:
            pieces.append((first, first + size))
            held = rows_per_step[first]
    window_start, window_end = params["start"], params["end"]
    return [(max(a, window_start), min(b, window_end)) for a, b in pieces]


def bound_params(tenant: str, start: int, end: int, **more: Any) -> dict[str, Any]:
    def clamped(t: int) -> int:
        return min(max(t, FIRST_SECOND), LAST_SECOND)

    return {"tenant": tenant, "start": clamped(start), "end": clamped(end), **more}


def _point(ts: int, value: float, labels: dict) -> dict[str, Any]:
    return {"timestamp": int(ts), "value": float(value), "labels": dict(labels)}


class RawJson:
    """A JSON value as pieces of text (bytes as stored, or written as rows arrive), sent as they are: never
    parsed, never joined into one copy of the whole body. The pieces may be a generator that runs its query
    when the response reaches it."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: Iterable[bytes]):
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.pieces)


def _metric_texts(reader, tenant: str, start: int, end: int, names: list[str] | None) -> Iterator[tuple[bytes, bytes]]:
    """(metric, JSON text of a run's points of one hour) from ``kubecost_metric_points_hourly``, ordered by
    metric, hour, then text (ClickHouse reads them in its key order: nothing to sort but an hour's texts)."""
    only = " AND metric IN {names:Array(String)}" if names else ""
    previous = None
    for row in reader.stream(f"SELECT metric, points_json FROM kubecost_metric_points_hourly WHERE {WINDOW}{only} "
                             "ORDER BY metric, hour, points_json", bound_params(tenant, start, end, names=names or []),
                             strings_as_bytes=True):
        if row != previous:  # the same text twice: one run's hour backfilled while it was written (0008)
            yield row
        previous = row


def kubecost_metrics(reader, tenant: str, start: int, end: int, names: list[str] | None) -> RawJson:
    """The ``metrics`` object: metric name -> its points (hourly means, with their labels), by hour, then by the
    point's text. Streamed: a 30-day answer holds 10^5 points, a year of a 2,000-pod tenant 130 MB."""

    def pieces() -> Iterator[bytes]:
        metric = None
        for name, text in _metric_texts(reader, tenant, start, end, names):
            if name == metric:
                yield b","
            else:
                yield (b"{" if metric is None else b"],") + json.dumps(name.decode()).encode() + b":["
                metric = name
            yield text
        yield b"{}" if metric is None else b"]}"

    return RawJson(pieces())


def savings(reader, tenant: str, start: int, end: int) -> dict[str, RawJson]:
    """``cpu_savings`` and ``memory_savings``: the points of one metric each, from one stream of both (the cpu
    metric's texts come first: the keys are written in the order the rows arrive)."""
    texts = _TextsByMetric(_metric_texts(reader, tenant, start, end, sorted(SAVINGS.values())))

    def points(metric: str) -> Iterator[bytes]:
        separator = b"["
        for text in texts.of(metric.encode()):
            yield separator
            yield text
            separator = b","
        yield b"[]" if separator == b"[" else b"]"

    return {key: RawJson(points(metric)) for key, metric in sorted(SAVINGS.items(), key=lambda item: item[1])}


class _TextsByMetric:
    """One stream of (metric, text) rows ordered by metric, read metric by metric: ``of(m)`` yields m's texts,
    skipping metrics before it; ask in ascending order."""

    def __init__(self, rows: Iterator[tuple[bytes, bytes]]):
        self.groups = itertools.groupby(rows, key=lambda row: row[0])
        self.pending: tuple[bytes, Iterator] | None = None

    def of(self, metric: bytes) -> Iterator[bytes]:
        while True:
            if self.pending is None:
                self.pending = next(self.groups, None)
            if self.pending is None or self.pending[0] > metric:
                return
            name, rows = self.pending
            self.pending = None
            if name == metric:
                for _, text in rows:
                    yield text
                return


def cluster_costs(reader, tenant: str, start: int, end: int) -> dict[str, Any]:
    """One query (the run lookup is most of its time): per hour and cluster the cost and its parts, summed here.
    Held in memory: one row per stored hour and cluster (a year of one cluster: 8,760 points, under 1 MB).

    ``summary.total_cost`` equals ``total_cost``, and the other summary keys add up to it: CloudTuner's REST API
    reads ``summary.total_cost`` and drops a cluster whose value is not above 0. ``breakdown`` is the object
    CloudTuner logs beside it: management, load balancers and the network cost by egress class (hours written before
    migration 0011 have no classes: their network cost is in ``summary.network_cost`` only)."""
    rows = reader.query(
        "SELECT toUnixTimestamp(hour) AS ts, cluster_id, sum(total_cost), sumIf(cpu_cost, namespace != {idle:String}), "
        "sumIf(ram_cost, namespace != {idle:String}), sumIf(gpu_cost, namespace != {idle:String}), sum(pv_cost), "
        "sum(network_cost), sum(lb_cost), sum(management_cost), sumIf(total_cost, namespace = {idle:String}), "
        "sum(network_internet_cost), sum(network_region_cost), sum(network_zone_cost) "
        f"FROM {NAMESPACE_ROLLUP} WHERE {WINDOW} GROUP BY ts, cluster_id ORDER BY ts, cluster_id",
        bound_params(tenant, start, end, idle=IDLE))
    names = ("cpu_cost", "ram_cost", "gpu_cost", "pv_cost", "network_cost", "load_balancer_cost", "management_cost",
             "idle_cost", "network_internet_cost", "network_region_cost", "network_zone_cost")
    sums = {name: math.fsum(row[3 + i] for row in rows) for i, name in enumerate(names)}
    total = math.fsum(row[2] for row in rows)
    return {
        "total_cost": total,
        "data_points": [_point(ts, value, {"cluster_id": cluster}) for ts, cluster, value, *_ in rows],
        "summary": {"total_cost": total, **{name: sums[name] for name in names[:8]}},
        "breakdown": {name: sums[name] for name in BREAKDOWN},
    }
