"""Read-time allocation math: sharing idle and overhead costs over the other groups, efficiency, rightsizing.

Pure functions on plain figures (docs/api.md, "Sharing"), no I/O: the read layer sums stored rows into ``Part``s
with SQL, one list per step, and these turn them into the answer's groups. Each ``Part`` is what the rows of one
output group contribute within one sharing domain (a cluster, or a node with ``idle_by_node``), with its role there
(``own``, ``idle``, ``management`` or ``shared``) and whether the request's filter keeps it. Sharing coefficients
are computed over every part, kept or not, and the filter applies afterwards, as OpenCost does: a group's shared
cost is the same with and without a filter that keeps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

OWN, IDLE_ROLE, MANAGEMENT_ROLE, SHARED = "own", "idle", "management", "shared"
# The figures a part sums (stored columns of k8s_expenses, or of the namespace rollup); usage sums are None where
# no row of the part has usage (NULL in SQL): 0 would read as 0% efficiency.
COSTS = ("cpu_cost", "ram_cost", "gpu_cost", "pv_cost", "network_cost", "lb_cost", "management_cost", "total_cost")
QUANTITIES = ("cpu_core_hours", "ram_byte_hours", "gpu_hours", "cpu_request_core_hours", "ram_request_byte_hours")
USAGE = ("cpu_usage_core_hours", "ram_usage_byte_hours")
WITH_USAGE = ("cpu_request_core_hours_with_usage", "ram_request_byte_hours_with_usage", "cpu_cost_with_usage",
              "ram_cost_with_usage")
FIGURES = (*COSTS, *QUANTITIES, *USAGE, *WITH_USAGE)
# Idle is shared resource by resource: each receiving part gets the domain's idle of that resource in proportion
# to its own cost of that resource.
IDLE_RESOURCES = ("cpu_cost", "ram_cost", "gpu_cost")
HOUR = 3600


@dataclass
class Part:
    """What one output group's rows contribute within one sharing domain of one step."""

    key: tuple[str, ...]
    cluster: str
    node: str  # the idle domain's node with idle_by_node, '' otherwise
    role: str
    kept: bool
    figures: dict[str, float | None]
    first_hour: int
    last_hour: int


@dataclass(frozen=True)
class SharePolicy:
    share_idle: bool = False
    idle_by_node: bool = False
    share_tenancy: bool = False  # cluster management shared like the shared namespaces and labels
    split: str = "weighted"  # "weighted" (by each receiving group's own total cost) or "even"


@dataclass
class Group:
    """One group of the answer for one step: its own figures and what sharing gave it."""

    key: tuple[str, ...]
    figures: dict[str, float | None]
    first_hour: int
    last_hour: int
    idle_cost: float = 0.0
    shared_cost: float = 0.0

    @property
    def total_cost(self) -> float:
        return self.figures["total_cost"] + self.idle_cost + self.shared_cost


def add_figures(into: dict[str, float | None], more: dict[str, float | None]) -> None:
    for name, value in more.items():
        if value is not None:
            into[name] = value if into.get(name) is None else into[name] + value
        else:
            into.setdefault(name, None)


def share(parts: list[Part], policy: SharePolicy) -> list[Group]:
    """The groups of one step, in key order, with idle, management and shared parts spread as ``policy`` says.

    Without a filter the groups' total cost is the parts' total: a share that has nothing to go to (idle of a
    resource no group in its domain pays for, a shared cost in a cluster of nothing else) stays where it was, as
    its own group. Parts the filter drops pass on what they would have received to nobody: they are left out."""
    received_idle = [0.0] * len(parts)
    received_shared = [0.0] * len(parts)
    # what stays of each part's own figures after sharing: None when the part is shared away whole
    staying: list[dict[str, float | None] | None] = [p.figures for p in parts]
    if policy.share_idle:
        for idle, members in _idle_domains(parts, policy.idle_by_node):
            left = {name: 0.0 for name in IDLE_RESOURCES}
            for resource in IDLE_RESOURCES:
                pool = math.fsum(parts[i].figures[resource] or 0.0 for i in idle)
                base = math.fsum(parts[i].figures[resource] or 0.0 for i in members)
                if base > 0:
                    for i in members:
                        received_idle[i] += pool * (parts[i].figures[resource] or 0.0) / base
                else:
                    left[resource] = pool
            for i in idle:
                staying[i] = _leftover(parts[i], left)

    for cluster in sorted({p.cluster for p in parts}):
        givers = [i for i, p in enumerate(parts) if p.cluster == cluster and (
            p.role == SHARED or (p.role == MANAGEMENT_ROLE and policy.share_tenancy))]
        takers = [i for i, p in enumerate(parts) if p.cluster == cluster and p.role == OWN]
        weights = _weights(parts, takers, policy.split)
        if not givers or not weights:
            continue  # nothing to share, or nobody to share it with: the givers stay as they are
        pool = math.fsum((parts[i].figures["total_cost"] or 0.0) + received_idle[i] for i in givers)
        for i in givers:
            staying[i], received_idle[i] = None, 0.0
        for i, weight in weights.items():
            received_shared[i] += pool * weight

    groups: dict[tuple[str, ...], Group] = {}
    for i, part in enumerate(parts):
        if not part.kept or staying[i] is None:
            continue
        group = groups.get(part.key)
        if group is None:
            group = groups[part.key] = Group(part.key, {}, part.first_hour, part.last_hour)
        add_figures(group.figures, staying[i])
        group.first_hour, group.last_hour = min(group.first_hour, part.first_hour), max(group.last_hour, part.last_hour)
        group.idle_cost += received_idle[i]
        group.shared_cost += received_shared[i]
    return [groups[key] for key in sorted(groups)]


def _idle_domains(parts: list[Part], by_node: bool) -> list[tuple[list[int], list[int]]]:
    """(idle parts, receiving parts) of each idle domain (a cluster, or a cluster's node): the receivers are the
    own and shared parts, the ones whose pods used the capacity."""
    domains: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for i, p in enumerate(parts):
        if p.role == IDLE_ROLE:
            domains.setdefault((p.cluster, p.node if by_node else ""), ([], []))[0].append(i)
    for i, p in enumerate(parts):
        if p.role in (OWN, SHARED) and (p.cluster, p.node if by_node else "") in domains:
            domains[(p.cluster, p.node if by_node else "")][1].append(i)
    return list(domains.values())


def _leftover(part: Part, left: dict[str, float]) -> dict[str, float | None] | None:
    """What an idle part keeps: its cost of the resources its domain had no receiver for, or nothing."""
    kept = {r: (part.figures[r] or 0.0) if left[r] else 0.0 for r in IDLE_RESOURCES}
    if not any(kept.values()):
        return None
    figures: dict[str, float | None] = {name: None if name in USAGE else 0.0 for name in FIGURES}
    figures.update(kept)
    figures["total_cost"] = math.fsum(kept.values())
    return figures


def _weights(parts: list[Part], takers: list[int], split: str) -> dict[int, float]:
    """Each taking part's share of a cluster's shared cost: by its own total cost, or even over the groups (a
    group's even share spread over its parts by their cost, evenly if they cost nothing)."""
    if split == "even":
        by_key: dict[tuple[str, ...], list[int]] = {}
        for i in takers:
            by_key.setdefault(parts[i].key, []).append(i)
        weights = {}
        for members in by_key.values():
            cost = math.fsum(parts[i].figures["total_cost"] or 0.0 for i in members)
            for i in members:
                within = (parts[i].figures["total_cost"] or 0.0) / cost if cost > 0 else 1 / len(members)
                weights[i] = within / len(by_key)
        return weights
    total = math.fsum(parts[i].figures["total_cost"] or 0.0 for i in takers)
    if total <= 0:
        return {}
    return {i: (parts[i].figures["total_cost"] or 0.0) / total for i in takers}


def efficiency(figures: dict[str, float | None]) -> tuple[float | None, float | None, float | None]:
    """(cpu, ram, total) efficiency of summed figures, Kubecost's cost-weighted definition (docs/model.md,
    "Efficiency"), the same rules as the view ``k8s_expenses_efficiency_current``: over the rows with known usage;
    a zero request is 1 if something was used and paid for, else 0; no CPU or RAM cost is 0; no usage is None."""

    def one(usage: float | None, request: float, cost: float) -> float | None:
        if usage is None:
            return None
        if request > 0:
            return usage / request
        return 1.0 if usage > 0 and cost > 0 else 0.0

    cpu_cost_known, ram_cost_known = figures["cpu_cost_with_usage"] or 0.0, figures["ram_cost_with_usage"] or 0.0
    cpu = one(figures["cpu_usage_core_hours"], figures["cpu_request_core_hours_with_usage"] or 0.0, cpu_cost_known)
    ram = one(figures["ram_usage_byte_hours"], figures["ram_request_byte_hours_with_usage"] or 0.0, ram_cost_known)
    if (figures["cpu_cost"] or 0.0) + (figures["ram_cost"] or 0.0) == 0:
        return cpu, ram, 0.0
    if cpu is None and ram is None:
        return cpu, ram, None
    weighed = (0.0 if cpu is None else cpu_cost_known) + (0.0 if ram is None else ram_cost_known)
    if weighed == 0:
        return cpu, ram, 0.0
    return cpu, ram, ((cpu or 0.0) * cpu_cost_known + (ram or 0.0) * ram_cost_known) / weighed


def averages(figures: dict[str, float | None], first_hour: int, last_hour: int) -> dict[str, float | None]:
    """Requests and usage as averages over the group's hours, from its first stored hour to its last (OpenCost
    divides by the aggregated allocation's minutes the same way): cores and bytes."""
    hours = (last_hour - first_hour) / HOUR + 1

    def per_hour(value: float | None) -> float | None:
        return None if value is None else value / hours

    return {"cpu_request_average_cores": per_hour(figures["cpu_request_core_hours"]),
            "ram_request_average_bytes": per_hour(figures["ram_request_byte_hours"]),
            "cpu_usage_average_cores": per_hour(figures["cpu_usage_core_hours"]),
            "ram_usage_average_bytes": per_hour(figures["ram_usage_byte_hours"])}


# -- rightsizing ---------------------------------------------------------------------------------------------------

MIN_CPU_CORES = 0.010
MIN_RAM_BYTES = 20 * 2**20
MONTH_HOURS = 730


def quantile(values: list[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default, ClickHouse's
    quantileExactInclusive)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def recommend(statistic: float | None, target: float, floor: float) -> float | None:
    """The request that puts the chosen usage statistic at ``target`` utilisation, never below ``floor``."""
    return None if statistic is None else max(statistic / target, floor)


def monthly_saving(current: float, recommended: float | None, price_per_unit_hour: float, replicas: float) -> float | None:
    """What the change of request saves a month (730 hours) at the price paid, over the average replicas running:
    negative where the recommendation is above the current request."""
    if recommended is None:
        return None
    return (current - recommended) * price_per_unit_hour * MONTH_HOURS * replicas + 0.0  # + 0.0: no -0.0
