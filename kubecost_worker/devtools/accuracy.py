"""Stored rows against a simulation's ground truth, row by row and cost by cost (the demo, tests, benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model.rows import COST_FIELDS
from ..sink.clickhouse import ClickHouseSink

KEY = ("cloud_account_id", "hour", "namespace", "workload_kind", "workload_name", "pod", "node")
COSTS = (*COST_FIELDS, "total_cost")


@dataclass
class Accuracy:
    compared: int
    missing: list[tuple]
    unexpected: list[tuple]
    max_abs_error: float
    max_rel_error: float

    @property
    def exact(self) -> bool:
        return not self.missing and not self.unexpected


def stored_rows(sink: ClickHouseSink) -> list[dict[str, Any]]:
    """The rows of ``k8s_expenses_current``, keyed and costed as the ground truth is (in no set order)."""
    names = ", ".join(n if n != "hour" else "toUnixTimestamp(hour) AS hour" for n in (*KEY, *COSTS))
    rows = sink.query(f"SELECT {names} FROM k8s_expenses_current")
    return [dict(zip((*KEY, *COSTS), r)) for r in rows]


def compare_with_ground_truth(stored: list[dict[str, Any]], truth: list[dict[str, Any]]) -> Accuracy:
    """Row by row, every cost column: what is missing, what is extra, and the largest error."""
    key = lambda row: tuple(row[k] for k in KEY)
    got = {key(r): r for r in stored}
    want = {key(r): r for r in truth}
    max_abs = max_rel = 0.0
    for k in want.keys() & got.keys():
        for column in COSTS:
            expected, actual = float(want[k][column]), float(got[k][column])
            error = abs(actual - expected)
            max_abs = max(max_abs, error)
            if expected:
                max_rel = max(max_rel, error / abs(expected))
    return Accuracy(len(want.keys() & got.keys()), sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys()),
                    max_abs, max_rel)
