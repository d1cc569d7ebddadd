"""Files for finance and other tools: the current data of a tenant and window, written by ClickHouse itself in its
own output formats (``CSVWithNames``, ``Parquet``, ``JSONEachRow``), streamed to the file as it comes.

Without ``aggregate`` an export holds the rows of ``k8s_expenses_current`` (every column but the run's
bookkeeping, ``total_cost`` included); with it, their sums grouped as the allocation API groups them
(docs/api.md: the same properties, the same ``__unallocated__`` and special rows), per step. Values are bound
parameters, never SQL text.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from .api import allocation, queries
from .model import sharing
from .sink.cluster import quote_identifier

FORMATS = {"csv": "CSVWithNames", "parquet": "Parquet", "jsonl": "JSONEachRow"}
# the sums an aggregated export holds, named as the stored columns
SUMS = (*sharing.COSTS, *sharing.QUANTITIES, *sharing.USAGE)
PROGRESS_SECONDS = 2.0


def export_sql(tenant: str, start: int, end: int, aggregate: str | None = None,
               step: str = "window") -> tuple[str, dict]:
    """The export's query and its parameters; ``aggregate`` as the allocation API takes it (``BadParameter``)."""
    if aggregate is None:
        sql = (f"SELECT * EXCEPT (run_id, inserted_at), total_cost FROM k8s_expenses WHERE {queries.WINDOW} "
               "ORDER BY hour, cluster_id, namespace, workload_kind, workload_name, pod, container, node")
        return sql, queries.bound_params(tenant, start, end)
    request = allocation.AllocationRequest(allocation.parse_aggregate(aggregate), step)
    params = allocation.BoundParams(queries.bound_params(tenant, start, end))
    keys = [f"d{i}" for i in range(len(request.dimensions))]
    dims = [f"{allocation.dimension_sql(d, params)} AS {key}" for d, key in zip(request.dimensions, keys)]
    sums = [f"sum({name}) AS f_{name}" for name in SUMS]
    # grouped under plain aliases, named in the outer query: a dimension named as the column it is made of (node,
    # pod, container...) would otherwise be an alias of itself
    inner = (f"SELECT toDateTime({allocation.STEPS[step]}, 'UTC') AS start, {', '.join([*dims, *sums])} "
             f"FROM {allocation.source_table(request)} WHERE {queries.WINDOW} GROUP BY start, {', '.join(keys)}")
    named = [f"{key} AS {quote_identifier(d.name)}" for key, d in zip(keys, request.dimensions)]
    sql = (f"SELECT start, {', '.join([*named, *(f'f_{name} AS {name}' for name in SUMS)])} FROM ({inner}) "
           f"ORDER BY start, {', '.join(keys)}")
    return sql, params.values


def export(client, out: Path, fmt: str, tenant: str, start: int, end: int, aggregate: str | None = None,
           step: str = "window", progress: Callable[[int], None] | None = None) -> int:
    """Write the export to ``out`` (through a temporary file beside it: a failed export leaves no partial file);
    returns the bytes written. ``progress(bytes so far)`` is called every couple of seconds."""
    sql, params = export_sql(tenant, start, end, aggregate, step)
    partial = out.with_name(out.name + ".partial")
    written, reported = 0, time.monotonic()
    try:
        with open(partial, "wb") as f:
            for chunk in client.raw_stream(sql, parameters=params, fmt=FORMATS[fmt]):
                f.write(chunk)
                written += len(chunk)
                if progress is not None and time.monotonic() - reported >= PROGRESS_SECONDS:
                    progress(written)
                    reported = time.monotonic()
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return written
