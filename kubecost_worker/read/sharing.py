"""Read-time allocation math: sharing idle and overhead costs over the other groups, efficiency, rightsizing.

Pure functions on plain figures (docs/api.md, "Sharing"), no I/O. Each ``Part`` is what the rows of one output group
contribute within one sharing domain (a cluster, or a node with ``idle_by_node``), with its role there (``own``,
``idle``, ``management`` or ``shared``) and whether the request's filter keeps it. Who gives, who receives and in what
proportion is decided by ``coefficients``, per domain, from a step's ``Totals`` (a few sums per cluster, node and
role); a part's share is its own figures times its domain's coefficients. ``share`` does that on parts in Python; the
read layer applies the same coefficients in SQL, so a step's parts never come to Python. Coefficients are computed
over every part, kept or not, and the filter applies afterwards, as OpenCost does: a group's shared cost is the same
with and without a filter that keeps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..hours import HOUR
from ..model.resources import RESOURCES
from ..model.rows import COST_FIELDS

OWN, IDLE_ROLE, MANAGEMENT_ROLE, SHARED = "own", "idle", "management", "shared"
# The figures a part sums (stored columns of k8s_expenses, or of the namespace rollup); usage sums are None where
# no row of the part has usage (NULL in SQL): 0 would read as 0% efficiency.
COSTS = (*COST_FIELDS, "total_cost")
QUANTITIES = ("cpu_core_hours", "ram_byte_hours", "gpu_hours", "cpu_request_core_hours", "ram_request_byte_hours")
USAGE = ("cpu_usage_core_hours", "ram_usage_byte_hours")
WITH_USAGE = ("cpu_request_core_hours_with_usage", "ram_request_byte_hours_with_usage", "cpu_cost_with_usage",
              "ram_cost_with_usage")
FIGURES = (*COSTS, *QUANTITIES, *USAGE, *WITH_USAGE)
# Idle is shared resource by resource: each receiving part gets the domain's idle of that resource in proportion
# to its own cost of that resource.
IDLE_RESOURCES = tuple(resource.cost_field for resource in RESOURCES)


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


# -- who gives, who receives, and in what proportion ---------------------------------------------------------------
#
# The rule is decided here once, as coefficients per sharing domain computed from a few totals of the step (``Totals``:
# their number grows with clusters and nodes, never with the groups); each part's share is then its own figures times
# its domain's coefficients. ``share`` applies them to parts in Python; the read layer applies the same coefficients
# in SQL (read/allocation.py), so an answer never holds a step's parts in Python.

# Roles that receive a domain's idle (the pods that used the capacity), and the role that takes shared costs.
IDLE_RECEIVERS = (OWN, SHARED)
TAKER = OWN
# What the coefficients weigh: each idle resource, and the total cost.
WEIGHED = (*IDLE_RESOURCES, "total_cost")


def giver_roles(policy: SharePolicy) -> tuple[str, ...]:
    """The roles whose parts are shared away over their cluster's takers."""
    return (SHARED, MANAGEMENT_ROLE) if policy.share_tenancy else (SHARED,)


@dataclass
class Totals:
    """What one step's coefficients are computed from: ``sums[(cluster, node, role)]`` the ``WEIGHED`` figures summed
    over the parts of that role in that idle domain (node '' unless idle is shared by node), and
    ``taker_groups[cluster]`` the number of groups taking shared costs in the cluster (the even split's divisor)."""

    sums: dict[tuple[str, str, str], dict[str, float]]
    taker_groups: dict[str, int]


@dataclass(frozen=True)
class IdleShare:
    """An idle domain's coefficients: what a receiving part gets per unit of its own cost of each resource (the
    domain's idle of the resource over the receivers' cost of it, 0 without receivers), and the resources whose idle
    has no receiver, which the idle parts keep."""

    factor: dict[str, float]
    stays: frozenset[str]


@dataclass
class Coefficients:
    """One step's coefficients: ``idle[(cluster, node)]`` for each idle domain with idle (with ``share_idle``), and
    ``shared[cluster]`` for each cluster whose givers are shared away: the givers' pool (with the idle they
    received) per unit of a taking part's own total cost (weighted split) or per taking group (even split).
    A cluster absent from ``shared`` keeps its givers: nothing to share, or nobody to share it with."""

    idle: dict[tuple[str, str], IdleShare]
    shared: dict[str, float]


def coefficients(totals: Totals, policy: SharePolicy) -> Coefficients:
    """Each domain's coefficients from its step's totals (in one pass over them: a step of a cluster of thousands of
    nodes has a few thousand)."""
    received: dict[tuple[str, str], dict[str, list[float]]] = {}  # the receivers' cost of each resource, per domain
    taken: dict[str, list[float]] = {}  # the takers' total cost, per cluster
    for (cluster, node, role), sums in totals.sums.items():
        if role in IDLE_RECEIVERS:
            into = received.setdefault((cluster, node), {r: [] for r in IDLE_RESOURCES})
            for r in IDLE_RESOURCES:
                into[r].append(sums[r])
        if role == TAKER:
            taken.setdefault(cluster, []).append(sums["total_cost"])
    idle: dict[tuple[str, str], IdleShare] = {}
    if policy.share_idle:
        for (cluster, node, role), pool in totals.sums.items():
            if role != IDLE_ROLE:
                continue
            base = {r: math.fsum(received.get((cluster, node), {}).get(r, ())) for r in IDLE_RESOURCES}
            idle[(cluster, node)] = IdleShare({r: pool[r] / base[r] if base[r] > 0 else 0.0 for r in IDLE_RESOURCES},
                                              frozenset(r for r in IDLE_RESOURCES if base[r] <= 0 and pool[r]))
    givers = giver_roles(policy)
    pools: dict[str, list[float]] = {}  # what the givers hold, with the idle they received, per cluster
    for (cluster, node, role), sums in totals.sums.items():
        if role in givers:
            pool = pools.setdefault(cluster, [])
            pool.append(sums["total_cost"])
            if role in IDLE_RECEIVERS and (cluster, node) in idle:
                pool.extend(sums[r] * idle[(cluster, node)].factor[r] for r in IDLE_RESOURCES)
    shared: dict[str, float] = {}
    for cluster, pool in pools.items():
        if policy.split == "even":
            divisor = float(totals.taker_groups.get(cluster, 0))
        else:
            divisor = math.fsum(taken.get(cluster, ()))
        if divisor > 0:  # else nobody to share with: the givers stay as they are
            shared[cluster] = math.fsum(pool) / divisor
    return Coefficients(idle, shared)


def totals_of(parts: list[Part], policy: SharePolicy) -> Totals:
    """The ``Totals`` of one step's parts (what the read layer's SQL sums over the stored rows)."""
    figures: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    takers: dict[str, set[tuple[str, ...]]] = {}
    for p in parts:
        into = figures.setdefault((p.cluster, _domain_node(p, policy), p.role), {name: [] for name in WEIGHED})
        for name in WEIGHED:
            into[name].append(p.figures[name] or 0.0)
        if p.role == TAKER:
            takers.setdefault(p.cluster, set()).add(p.key)
    return Totals({key: {name: math.fsum(values) for name, values in sums.items()} for key, sums in figures.items()},
                  {cluster: len(keys) for cluster, keys in takers.items()})


def received_idle(part: Part, coefficients: Coefficients, policy: SharePolicy) -> float:
    idle = coefficients.idle.get((part.cluster, _domain_node(part, policy)))
    if idle is None or part.role not in IDLE_RECEIVERS:
        return 0.0
    return sum((part.figures[r] or 0.0) * idle.factor[r] for r in IDLE_RESOURCES)


def staying(part: Part, coefficients: Coefficients, policy: SharePolicy) -> dict[str, float | None] | None:
    """What stays of a part's own figures after sharing: all of them, an idle part's cost of the resources with
    no receiver, or None when the part is shared away whole."""
    if part.role == IDLE_ROLE and policy.share_idle:
        stays = coefficients.idle[(part.cluster, _domain_node(part, policy))].stays
        kept = {r: (part.figures[r] or 0.0) if r in stays else 0.0 for r in IDLE_RESOURCES}
        if not any(kept.values()):
            return None
        figures: dict[str, float | None] = {name: None if name in USAGE else 0.0 for name in FIGURES}
        figures.update(kept)
        figures["total_cost"] = sum(kept.values())
        return figures
    if part.role in giver_roles(policy) and part.cluster in coefficients.shared:
        return None
    return part.figures


def received_shared(part: Part, coefficients: Coefficients, policy: SharePolicy, within: float) -> float:
    """A taking part's shared cost: the rate times its own total cost (weighted), or times ``within``, its part
    of its group's one even share (``within_group``)."""
    rate = coefficients.shared.get(part.cluster)
    if rate is None or part.role != TAKER:
        return 0.0
    return rate * (within if policy.split == "even" else (part.figures["total_cost"] or 0.0))


def within_group(cost: float, group_cost: float, group_parts: int) -> float:
    """A taking part's fraction of its group's even share in its cluster: by its cost among the group's taking parts
    there, evenly if they cost nothing."""
    return cost / group_cost if group_cost > 0 else 1 / group_parts


def share(parts: list[Part], policy: SharePolicy) -> list[Group]:
    """The groups of one step, in key order, with idle, management and shared parts spread as ``policy`` says.

    Without a filter the groups' total cost is the parts' total: a share that has nothing to go to (idle of a
    resource no group in its domain pays for, a shared cost in a cluster of nothing else) stays where it was, as
    its own group. Parts the filter drops pass on what they would have received to nobody: they are left out."""
    found = coefficients(totals_of(parts, policy), policy)
    within = _within(parts) if policy.split == "even" else {}
    groups: dict[tuple[str, ...], Group] = {}
    for i, part in enumerate(parts):
        figures = staying(part, found, policy) if part.kept else None
        if figures is None:
            continue
        group = groups.get(part.key)
        if group is None:
            group = groups[part.key] = Group(part.key, {}, part.first_hour, part.last_hour)
        add_figures(group.figures, figures)
        group.first_hour, group.last_hour = min(group.first_hour, part.first_hour), max(group.last_hour, part.last_hour)
        group.idle_cost += received_idle(part, found, policy)
        group.shared_cost += received_shared(part, found, policy, within.get(i, 0.0))
    return [groups[key] for key in sorted(groups)]


def _domain_node(part: Part, policy: SharePolicy) -> str:
    return part.node if policy.idle_by_node else ""


def _within(parts: list[Part]) -> dict[int, float]:
    """``within_group`` of each taking part (parts by index)."""
    members: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for i, p in enumerate(parts):
        if p.role == TAKER:
            members.setdefault((p.cluster, p.key), []).append(i)
    within = {}
    for indices in members.values():
        cost = math.fsum(parts[i].figures["total_cost"] or 0.0 for i in indices)
        for i in indices:
            within[i] = within_group(parts[i].figures["total_cost"] or 0.0, cost, len(indices))
    return within


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
