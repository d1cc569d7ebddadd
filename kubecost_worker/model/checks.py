"""The last look at a tenant-hour's numbers before they are stored: every quantity and cost finite, not
negative, and within what any Kubernetes resource can cost. Inputs the source let through (a price of -1e308, a
mean of 1e308) end here as a refused hour, never as a stored NaN or infinity."""

from __future__ import annotations

import math

from .rows import COST_FIELDS, NETWORK_FIELDS, QUANTITY_FIELDS, REQUEST_FIELDS, USAGE_FIELDS, HourResult

# No single row (a pod, a node's idle capacity, a load balancer, the cluster fee) costs a million dollars an hour:
# the largest cloud machines cost a few hundred.
MAX_ROW_HOURLY_COST = 1e6
SHOWN = 5  # problems named in the error; the rest are counted


def implausible(result: HourResult) -> list[str]:
    """What is wrong with the hour's numbers, one line per value (empty: nothing)."""
    problems = []
    for row in result.rows:
        where = f"{row.namespace}/{row.pod or row.node or row.workload_name}"
        for name in (*QUANTITY_FIELDS, *COST_FIELDS):
            value = getattr(row, name)
            if not math.isfinite(value) or value < 0:
                problems.append(f"{where}: {name} = {value!r}")
            elif name in COST_FIELDS and value > MAX_ROW_HOURLY_COST:
                problems.append(f"{where}: {name} = {value!r} (more than {MAX_ROW_HOURLY_COST:g} an hour)")
        for name in (*REQUEST_FIELDS, *USAGE_FIELDS, *NETWORK_FIELDS):
            value = getattr(row, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                problems.append(f"{where}: {name} = {value!r}")
        if row.running_minutes > 60 + 1e-9:
            problems.append(f"{where}: running_minutes = {row.running_minutes!r} (more than the hour)")
    for node in result.nodes:
        for name in ("cpu_cores", "ram_bytes", "gpu_count", "cpu_price", "ram_price", "gpu_price", "cpu_cost",
                     "ram_cost", "gpu_cost", "allocated_cost", "idle_cost"):
            value = getattr(node, name)
            if not math.isfinite(value) or value < 0:
                problems.append(f"node {node.node}: {name} = {value!r}")
    for sample in result.metric_samples:
        if not math.isfinite(sample.value):
            problems.append(f"{sample.metric}{sample.labels}: hourly mean = {sample.value!r}")
    return problems


def describe(problems: list[str]) -> str:
    more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return "; ".join(problems[:SHOWN]) + more
