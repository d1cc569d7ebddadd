"""A simulated multi-tenant Kubecost cluster with exact ground truth, for the demo, tests and benchmarks.

``simulate`` decides the clusters (``cluster.py``); a ``Simulation`` writes them as OpenMetrics (``openmetrics.py``)
and derives the rows the cost model must produce from them, expense and node rows (``oracle.py``);
``write_simulation`` does both into a directory.
"""

from __future__ import annotations

import os

from ..hours import is_hour_start
from .cluster import TenantSim, _Builder
from .openmetrics import OpenMetricsWriter
from .oracle import GroundTruth


class Simulation(OpenMetricsWriter, GroundTruth):
    """Every tenant's decided cluster over ``hours`` from ``start``, one sample every ``step`` seconds."""

    def __init__(self, tenants: list[TenantSim], start: int, hours: int, step: int, seed: int):
        self.tenants = tenants
        self.start = start
        self.hours = hours
        self.step = step
        self.seed = seed
        self.steps_per_hour = 3600 // step
        self.total_steps = hours * self.steps_per_hour
        self.series_written = 0
        self._truth: list[dict] | None = None
        self._truth_nodes: list[dict] | None = None

    def hour_steps(self, h: int) -> range:
        n = self.steps_per_hour
        return range(h * n, (h + 1) * n)


def simulate(tenants: list[str], start: int, hours: int, nodes: int = 3, pods: int = 20,
             step: int = 60, seed: int = 0) -> "Simulation":
    """Decide a synthetic cluster per tenant. Nothing is written yet."""
    tenants = list(tenants)
    if not tenants:
        raise ValueError("at least one tenant is needed")
    if len(set(tenants)) != len(tenants):
        raise ValueError("tenants must be unique")
    if not is_hour_start(start):
        raise ValueError("start must be a unix time on an hour boundary")
    if hours < 1:
        raise ValueError("hours must be >= 1")
    if nodes < 1:
        raise ValueError("nodes must be >= 1")
    if step <= 0 or 3600 % step:
        raise ValueError("step must divide 3600")
    sims = [_Builder(t, i, hours, nodes, pods, step, int(start), seed).build() for i, t in enumerate(tenants)]
    return Simulation(sims, int(start), hours, step, seed)


def write_simulation(out_dir, tenants, start, hours, nodes=3, pods=20, step=60, seed=0) -> dict:
    """Simulate and write ``out_dir/metrics.om``, ``out_dir/ground_truth.jsonl`` (expense rows) and
    ``out_dir/ground_truth_nodes.jsonl`` (node rows)."""
    os.makedirs(out_dir, exist_ok=True)
    sim = simulate(tenants, start, hours, nodes=nodes, pods=pods, step=step, seed=seed)
    om = os.path.join(out_dir, "metrics.om")
    gt = os.path.join(out_dir, "ground_truth.jsonl")
    samples = sim.write_openmetrics(om)
    sim.write_ground_truth(gt)
    gt_nodes = os.path.join(out_dir, "ground_truth_nodes.jsonl")
    sim.write_ground_truth_nodes(gt_nodes)
    return {"openmetrics": om, "ground_truth": gt, "ground_truth_nodes": gt_nodes, "samples": samples,
            "series": sim.series_written}
