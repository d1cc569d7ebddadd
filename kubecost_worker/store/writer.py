"""Writing a tenant-hour's rows so that reruns replace them exactly. The write protocol of one run (the rules are in
``ledger.py``, ``ClickHouseSink.write_hour`` follows it):

1. ledger record ``running`` (run id, start time);
2. insert the expense rows, the node rows and the metric samples, tagged with the run id (``insert_rows``:
   invisible, no view selects them);
3. ledger record ``succeeded``, unless the run's deadline has passed: from this single-row insert on,
   ``k8s_expenses_current`` shows the new run's rows instead of the previous run's; a reader sees the old hour or
   the new one, never a mix.

Nothing is deleted on the way: the rows of the runs a commit supersedes stay underneath, invisible, until cleanup
(``cleanup.py``) removes them. A rerun costs what a first run costs, however large the tables. A crash anywhere
leaves at worst invisible rows of an unfinished run, collected once it is stale.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from ..hours import now, utc
from ..model.rows import ExpenseRow, HourResult, MetricSample, NodeRow
from . import schema
from .client import classified

# What the writer sends to each table: its declared columns (store/schema/) but those the server computes
# (total_cost on read). A row's fields are those of its table without the run's id and insertion time, which the
# writer adds.
RUN_BOOKKEEPING = ["run_id", "inserted_at"]
ROW_FIELDS = [c for c in schema.written_columns("k8s_expenses") if c not in RUN_BOOKKEEPING]  # ExpenseRow's, in order
EXPENSE_COLUMNS = [*ROW_FIELDS, *RUN_BOOKKEEPING]
NODE_FIELDS = [c for c in schema.written_columns("k8s_nodes_hourly") if c not in RUN_BOOKKEEPING]  # NodeRow's
NODE_COLUMNS = [*NODE_FIELDS, *RUN_BOOKKEEPING]
METRIC_COLUMNS = schema.written_columns("kubecost_metrics_hourly")


def insert_rows(client: Any, run_id: uuid.UUID, result: HourResult) -> None:
    """Insert the rows of a run (expenses, nodes, metric samples), tagged with its id: invisible until it commits."""
    inserted_at = now()
    with classified(f"inserting {len(result.rows)} rows"):
        if result.rows:
            client.insert("k8s_expenses", as_expense_columns(result.rows, run_id, inserted_at),
                          column_names=EXPENSE_COLUMNS, column_oriented=True)
        if result.nodes:
            client.insert("k8s_nodes_hourly", as_node_columns(result.nodes, run_id, inserted_at),
                          column_names=NODE_COLUMNS, column_oriented=True)
        if result.metric_samples:
            client.insert("kubecost_metrics_hourly", as_metric_columns(result.metric_samples, run_id),
                          column_names=METRIC_COLUMNS, column_oriented=True)


def as_expense_columns(rows: list[ExpenseRow], run_id: uuid.UUID, inserted_at: dt.datetime) -> list[list]:
    """Column-oriented: one list per column of EXPENSE_COLUMNS (the hour as a datetime, the run's id and time).
    Unknown usage stays None: its columns are Nullable, so it is stored NULL, never 0."""
    return _run_columns(rows, ROW_FIELDS, run_id, inserted_at)


def as_node_columns(nodes: list[NodeRow], run_id: uuid.UUID, inserted_at: dt.datetime) -> list[list]:
    """Column-oriented: one list per column of NODE_COLUMNS."""
    return _run_columns(nodes, NODE_FIELDS, run_id, inserted_at)


def _run_columns(rows: list, fields: list[str], run_id: uuid.UUID, inserted_at: dt.datetime) -> list[list]:
    columns = [[getattr(r, name) for r in rows] for name in fields]
    hours = columns[fields.index("hour")]
    as_datetime = {hour: utc(hour) for hour in set(hours)}  # a run's rows share one or a few hours
    columns[fields.index("hour")] = [as_datetime[hour] for hour in hours]
    return [*columns, [run_id] * len(rows), [inserted_at] * len(rows)]


def as_metric_columns(samples: list[MetricSample], run_id: uuid.UUID) -> list[list]:
    """Column-oriented: one list per column of METRIC_COLUMNS, the point's JSON text as the read API serves it."""
    return [
        [s.cloud_account_id for s in samples],
        [utc(s.hour) for s in samples],
        [s.metric for s in samples],
        [s.labels for s in samples],
        [s.value for s in samples],
        [s.samples for s in samples],
        [json.dumps({"timestamp": s.hour, "value": s.value, "labels": dict(sorted(s.labels.items()))},
                    separators=(",", ":"), allow_nan=False) for s in samples],
        [run_id] * len(samples),
    ]
