"""Cleanup of a backlog of obsolete runs in one monthly partition (a month's rerun, a Thanos outage).

    .venv/bin/python bench/gc.py [--runs 10000] [--tenants 10] [--hours 250] [--rows-per-hour 20] [--rows-every 50]

Fills an embedded ClickHouse (the project's migrations) with ``--tenants`` tenants (UUID ids, as CloudTuner's: the
longest text a run takes in a delete) x ``--hours`` hours of January 2026, each tenant-hour with a current
(succeeded) run of ``--rows-per-hour`` expense rows, and ``--runs`` failed runs spread over those hours, every
``--rows-every``-th with rows of its own; then times one ``collect_garbage`` (``kubecost-worker gc``) and checks
that only the current runs' rows are left. Prints the runs removed, the deletes sent (each within
``MAX_DELETE_BYTES``), the longest statement and the seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubecost_worker.model.rows import ExpenseRow  # noqa: E402
from kubecost_worker.store.ledger import RunRecord, RunStatus
from kubecost_worker.hours import now  # noqa: E402
from kubecost_worker.store import migrations  # noqa: E402
from kubecost_worker.store.cleanup import MAX_DELETE_BYTES, RUN_TABLES  # noqa: E402
from kubecost_worker.store.clickhouse import ClickHouseSink  # noqa: E402
from kubecost_worker.store.client import connect  # noqa: E402
from kubecost_worker.store.writer import EXPENSE_COLUMNS, as_expense_columns  # noqa: E402

JANUARY = 1_767_225_600  # 2026-01-01T00:00:00Z


def rows_of(tenant: str, hour: int, count: int, cost: float) -> list[ExpenseRow]:
    return [ExpenseRow(tenant, "c1", hour, "default", "deployment", "api", f"pod-{k}", "n1", cpu_cost=cost,
                       cpu_core_hours=1.0) for k in range(count)]


def insert_rows(sink: ClickHouseSink, runs: list[RunRecord], per_run: int, cost: float) -> None:
    at = now()
    columns: list[list] = []
    for run in runs:  # one insert for all: column-oriented lists of every run's rows
        some = as_expense_columns(rows_of(run.cloud_account_id, run.hour, per_run, cost), run.run_id, at)
        if not columns:
            columns = [[] for _ in some]
        for column, values in zip(columns, some):
            column.extend(values)
    if columns:
        sink.client.insert("k8s_expenses", columns, column_names=EXPENSE_COLUMNS, column_oriented=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--hours", type=int, default=250)
    parser.add_argument("--rows-per-hour", type=int, default=20)
    parser.add_argument("--rows-every", type=int, default=50)
    args = parser.parse_args()
    if args.hours > 744:
        parser.error("--hours: at most 744 (January: one partition)")

    with tempfile.TemporaryDirectory(prefix="kcw-gc-") as directory:
        client = connect(f"chdb://{directory}/clickhouse")
        migrations.migrate(client)
        sink = ClickHouseSink(client)
        tenants = [str(uuid.uuid4()) for _ in range(args.tenants)]
        hours = [JANUARY + k * 3600 for k in range(args.hours)]
        started = now()
        current = [RunRecord(t, h, uuid.uuid4(), RunStatus.SUCCEEDED, "bench", started, started)
                   for t in tenants for h in hours]
        per_hour = -(-args.runs // len(current))
        obsolete = [RunRecord(t, h, uuid.uuid4(), RunStatus.FAILED, "bench", started, started, error="outage")
                    for t in tenants for h in hours for _ in range(per_hour)][:args.runs]
        insert_rows(sink, current, args.rows_per_hour, 1.0)
        with_rows = obsolete[::args.rows_every] if args.rows_every else []
        insert_rows(sink, with_rows, args.rows_per_hour, 9.0)
        sink.record(*obsolete)
        sink.record(*current)  # committed after the failures: the current runs
        stored = sink.query("SELECT count() FROM k8s_expenses")[0][0]

        sent: list[str] = []
        command = client.command

        def counted(statement, *a, **k):
            sent.append(statement)
            return command(statement, *a, **k)

        client.command = counted
        began = time.perf_counter()
        done = sink.collect_garbage()
        seconds = time.perf_counter() - began
        client.command = command
        deletes = [s for s in sent if s.startswith("DELETE")]
        left = {r for t in RUN_TABLES for r, in sink.query(f"SELECT DISTINCT run_id FROM {t}")}
        assert done.runs == len(obsolete) and left == {r.run_id for r in current}, (done, len(left))
        print(f"store: {len(tenants)} tenants x {len(hours)} hours of one partition, {len(current):,} current runs, "
              f"{len(obsolete):,} failed runs ({len(with_rows):,} with rows), {stored:,} expense rows")
        print(f"cleanup: {done.runs:,} runs removed in {seconds:.2f} s ({seconds / max(done.runs, 1) * 1000:.2f} ms a "
              f"run), {len(deletes)} deletes over {len(RUN_TABLES)} tables ({len(deletes) // len(RUN_TABLES)} "
              f"a table), the longest {max(len(s.encode()) for s in deletes):,} bytes (limit {MAX_DELETE_BYTES:,}, "
              "ClickHouse's max_query_size 262,144)")
        client.close()


if __name__ == "__main__":
    main()
