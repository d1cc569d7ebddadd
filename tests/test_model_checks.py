"""``model/checks.py``: the last check before the commit (``implausible``), as a pure function."""

from __future__ import annotations

import math

import pytest

from kubecost_worker.model.checks import implausible
from kubecost_worker.model.rows import ExpenseRow, HourResult, MetricSample


def row(**figures) -> ExpenseRow:
    return ExpenseRow("t", "c", 0, "ns", "deployment", "web", "web-1", "node-1", **figures)


@pytest.mark.parametrize("figures, problem", [
    ({"cpu_cost": math.nan}, "cpu_cost = nan"),
    ({"ram_cost": math.inf}, "ram_cost = inf"),
    ({"pv_cost": -0.01}, "pv_cost = -0.01"),
    ({"cpu_core_hours": -1.0}, "cpu_core_hours = -1.0"),
    ({"gpu_cost": 2e6}, "more than 1e+06 an hour"),
    ({"running_minutes": 61.0}, "more than the hour"),
])
def test_implausible_numbers_are_named(figures, problem):
    problems = implausible(HourResult([row(cpu_cost=1.0), row(**figures)], [], 0, []))
    assert len(problems) == 1 and problem in problems[0] and problems[0].startswith("ns/web-1: ")


def test_plausible_numbers_pass_and_a_nan_mean_does_not():
    good = row(running_minutes=60.0, cpu_core_hours=2.0, cpu_cost=0.06, ram_cost=0.01, management_cost=0.0)
    assert implausible(HourResult([good], [MetricSample("t", 0, "kubecost_x", {}, 1.5, 60)], 60, [])) == []
    assert implausible(HourResult([good], [MetricSample("t", 0, "kubecost_x", {}, math.nan, 60)], 60, [])) \
        == ["kubecost_x{}: hourly mean = nan"]
