"""Stored rows against a simulation's ground truth, row by row and column by column (the demo, tests, benchmarks):
the expense rows of ``k8s_expenses_current`` and the node rows of ``k8s_nodes_hourly_current``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from ..model.rows import COST_FIELDS, NETWORK_FIELDS, QUANTITY_FIELDS, REQUEST_FIELDS, USAGE_FIELDS, NodeRow
from ..store.clickhouse import ClickHouseSink

KEY = ("cloud_account_id", "cluster_id", "hour", "namespace", "workload_kind", "workload_name", "pod", "node",
       "container", "pod_uid")
COSTS = (*COST_FIELDS, "total_cost")
# every numeric column, compared within the tolerance; a NULL (None) is equal only to a NULL
NUMBERS = (*QUANTITY_FIELDS, *COSTS, *REQUEST_FIELDS, *USAGE_FIELDS, *NETWORK_FIELDS)
TEXTS = ("service", "price_source")  # compared exactly

NODE_KEY = ("cloud_account_id", "cluster_id", "hour", "node")
NODE_TEXTS = ("provider_id", "instance_type", "region", "zone", "arch", "price_source", "spot")
NODE_NUMBERS = tuple(f.name for f in fields(NodeRow) if f.name not in (*NODE_KEY, *NODE_TEXTS))

# what the end-to-end tests allow: values travel exactly, only the order of float additions differs
REL, ABS = 1e-9, 1e-12


@dataclass
class Accuracy:
    compared: int
    missing: list[tuple]
    unexpected: list[tuple]
    max_abs_error: float
    max_rel_error: float
    # (key, column, expected, stored): a NULL against a number, a differing string, or (beyond rel/abs) a number
    mismatches: list[tuple] = field(default_factory=list)
    worst: tuple | None = None  # (key, column, expected, stored) of the largest relative error

    @property
    def exact(self) -> bool:
        """The same rows, and every column within the tolerance the comparison was made with."""
        return not self.missing and not self.unexpected and not self.mismatches


def stored_rows(sink: ClickHouseSink) -> list[dict[str, Any]]:
    """The rows of ``k8s_expenses_current``, keyed and with the columns the ground truth has (in no set order)."""
    return _select(sink, "k8s_expenses_current", (*KEY, *NUMBERS, *TEXTS))


def stored_nodes(sink: ClickHouseSink) -> list[dict[str, Any]]:
    """The rows of ``k8s_nodes_hourly_current`` (NodeRow's fields as columns)."""
    return _select(sink, "k8s_nodes_hourly_current", tuple(f.name for f in fields(NodeRow)))


def _select(sink: ClickHouseSink, view: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """``columns`` of every row of ``view`` as dicts, the hour as unix seconds (as the ground truth has it)."""
    names = ", ".join(n if n != "hour" else "toUnixTimestamp(hour) AS hour" for n in columns)
    return [dict(zip(columns, r)) for r in sink.query(f"SELECT {names} FROM {view}")]


def compare_with_ground_truth(stored: list[dict[str, Any]], truth: list[dict[str, Any]], rel: float = REL,
                              abs_: float = ABS) -> Accuracy:
    """Row by row, every numeric and text column: what is missing, what is extra, what differs, the largest error.
    A column the ground truth has and a stored row does not (an older caller's query) is not compared."""
    return _compare(stored, truth, KEY, NUMBERS, TEXTS, rel, abs_)


def compare_nodes_with_ground_truth(stored: list[dict[str, Any]], truth: list[dict[str, Any]], rel: float = REL,
                                    abs_: float = ABS) -> Accuracy:
    return _compare(stored, truth, NODE_KEY, NODE_NUMBERS, NODE_TEXTS, rel, abs_)


def _compare(stored, truth, key_columns, numbers, texts, rel, abs_) -> Accuracy:
    key = lambda row: tuple(row[k] for k in key_columns if k in row)
    got = {key(r): r for r in stored}
    want = {key(r): r for r in truth}
    max_abs = max_rel = 0.0
    worst = None
    mismatches = []
    for k in sorted(want.keys() & got.keys()):
        expected_row, stored_row = want[k], got[k]
        for column in numbers:
            if column not in stored_row or column not in expected_row:
                continue
            expected, actual = expected_row[column], stored_row[column]
            if expected is None or actual is None:
                if (expected is None) != (actual is None):
                    mismatches.append((k, column, expected, actual))
                continue
            expected, actual = float(expected), float(actual)
            error = abs(actual - expected)
            if not math.isfinite(error) or error > max(abs_, rel * abs(expected)):
                mismatches.append((k, column, expected, actual))
            max_abs = max(max_abs, error)
            if expected and error / abs(expected) > max_rel:
                max_rel = error / abs(expected)
                worst = (k, column, expected, actual)
        for column in texts:
            if column in stored_row and column in expected_row and stored_row[column] != expected_row[column]:
                mismatches.append((k, column, expected_row[column], stored_row[column]))
    return Accuracy(len(want.keys() & got.keys()), sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys()),
                    max_abs, max_rel, mismatches, worst)
