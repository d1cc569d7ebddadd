"""Writing a tenant-hour's rows so that reruns replace them exactly. The write protocol of one run (the rules are in
``ledger.py``, ``ClickHouseSink.write_hours`` follows it, for the runs of a batch together):

1. ledger record ``running`` (run id, start time);
2. insert the expense rows, the node rows and the metric samples, tagged with the run id (``insert_rows``:
   invisible, no view selects them);
3. ledger record ``succeeded``, unless the run's deadline has passed: from this insert on,
   ``k8s_expenses_current`` shows the new run's rows instead of the previous run's; a reader sees the old hour or
   the new one, never a mix. The runs of a batch share steps 2 and 3 (one insert per table, one ledger insert),
   each still committed by its own record: one whose deadline passed is left out and fails alone.

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
from .client import insert

# What the writer sends to each table: its declared columns (store/schema/) but those the server computes
# (total_cost on read). A row's fields are those of its table without the run's id and insertion time, which the
# writer adds.
RUN_BOOKKEEPING = ["run_id", "inserted_at"]
ROW_FIELDS = [c for c in schema.written_columns("k8s_expenses") if c not in RUN_BOOKKEEPING]  # ExpenseRow's, in order
EXPENSE_COLUMNS = [*ROW_FIELDS, *RUN_BOOKKEEPING]
NODE_FIELDS = [c for c in schema.written_columns("k8s_nodes_hourly") if c not in RUN_BOOKKEEPING]  # NodeRow's
NODE_COLUMNS = [*NODE_FIELDS, *RUN_BOOKKEEPING]
VOLUME_FIELDS = [c for c in schema.written_columns("k8s_volumes_hourly") if c not in RUN_BOOKKEEPING]  # VolumeRow's
VOLUME_COLUMNS = [*VOLUME_FIELDS, *RUN_BOOKKEEPING]
METRIC_COLUMNS = schema.written_columns("kubecost_metrics_hourly")


def insert_rows(client: Any, runs: list[tuple[uuid.UUID, HourResult]]) -> None:
    """Insert the rows of runs (expenses, nodes, volumes, metric samples), each tagged with its run's id: invisible until that
    run commits. One insert per table for all of them: a batch's hours cost one round trip per table."""
    inserted_at = now()
    action = f"inserting {sum(len(result.rows) for _, result in runs)} rows"
    tables = (("k8s_expenses", EXPENSE_COLUMNS, lambda r, run_id: as_expense_columns(r.rows, run_id, inserted_at)),
              ("k8s_nodes_hourly", NODE_COLUMNS, lambda r, run_id: as_node_columns(r.nodes, run_id, inserted_at)),
              ("k8s_volumes_hourly", VOLUME_COLUMNS,
               lambda r, run_id: _run_columns(r.volumes, VOLUME_FIELDS, run_id, inserted_at)),
              ("kubecost_metrics_hourly", METRIC_COLUMNS, lambda r, run_id: as_metric_columns(r.metric_samples,
                                                                                              run_id)))
    for table, column_names, columns_of in tables:
        columns: list[list] = [[] for _ in column_names]
        for run_id, result in runs:
            for column, values in zip(columns, columns_of(result, run_id)):
                column.extend(values)
        if columns[0]:
            insert(client, table, column_names, columns, column_oriented=True, action=action)


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
