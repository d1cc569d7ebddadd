"""Reconciliation with the cloud bill (docs/reconciliation.md): one tenant-day's nodes and volumes, each hour's
modelled cost, against the FOCUS bill lines matched to them, as a factor per resource and billing period.

Pure: resource-hours and bill lines in (``store/reconcile.py`` reads them, matching keys already made by the one
matching rule), factors out. A resource group is the resources of one kind sharing a matching key (an Azure scale
set's nodes; one node or volume elsewhere); its billing period is the hour where every one of its lines of the day
covers at most an hour, else the day. The group's factor for a period is billed / modelled, so its rows scaled by it
add up to the bill; a resource-hour no matched period covers keeps factor 1 and is counted unmatched.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from ..hours import DAY, HOUR

NODE, VOLUME, BILL = "node", "volume", "bill"  # BILL: a line of the tenant's clusters that no resource is
# the ServiceCategory of a usage line of each kind; Credit and Adjustment lines go to whichever resource they name
SERVICE_OF_KIND = {"Compute": NODE, "Storage": VOLUME}


@dataclass(frozen=True)
class ResourceHour:
    kind: str        # NODE or VOLUME
    cluster_id: str
    resource: str    # the node's or the volume's name
    hour: int
    key: str         # its provider id under the matching rule; '' matches nothing
    modelled: float  # what its rows hold for the hour: a node's CPU, RAM, GPU (pods and idle), a volume's pv_cost


@dataclass(frozen=True)
class BillLines:
    """The lines of one resource key, kind of charge and charge period, summed."""

    key: str
    service: str       # ServiceCategory
    category: str      # ChargeCategory: Usage, Credit, Adjustment
    start: int         # ChargePeriodStart
    end: int           # ChargePeriodEnd
    cost: Decimal      # KCW_BILL_COST summed, exactly
    lines: int
    cluster: str = ""  # the provider's cluster tag of the lines, '' without one


@dataclass(frozen=True)
class Factor:
    """A resource-hour's factor (kind BILL: an unmatched bill period of the tenant's clusters, resource '')."""

    kind: str
    cluster_id: str
    resource: str
    resource_id: str
    hour: int
    period_start: int
    period_end: int
    modelled: float           # the resource's own modelled cost in the hour
    factor: float             # billed / modelled of its group's period; 1 where unmatched
    matched: bool
    period_modelled: float    # of the group in the period
    period_billed: Decimal    # of the group's lines in the period
    bill_lines: int


def reconcile(resources: list[ResourceHour], lines: list[BillLines], clusters: set[str]) -> list[Factor]:
    """The factors of one tenant-day: a row per resource-hour, and one per bill period of ``clusters`` (by the
    lines' cluster tag) that matches no resource-hour with a cost."""
    groups: dict[tuple[str, str], list[ResourceHour]] = defaultdict(list)
    for r in resources:
        if r.key:
            groups[(r.kind, r.key)].append(r)
    kinds_of_key = defaultdict(list)
    for kind, key in groups:
        kinds_of_key[key].append(kind)
    billed: dict[tuple[str, str], list[BillLines]] = defaultdict(list)
    foreign: list[BillLines] = []
    for line in lines:
        kind = _kind_of(line, kinds_of_key.get(line.key, []))
        if kind is not None:
            billed[(kind, line.key)].append(line)
        elif line.cluster in clusters:
            foreign.append(line)
    factors: list[Factor] = []
    covered: set[tuple[str, str, str, int]] = set()
    for (kind, key), group_lines in billed.items():
        factors += _group_factors(kind, key, groups[(kind, key)], group_lines, covered)
    factors += [Factor(r.kind, r.cluster_id, r.resource, r.key, r.hour, r.hour, r.hour + HOUR, r.modelled, 1.0,
                       False, r.modelled, Decimal(0), 0)
                for r in resources if (r.kind, r.cluster_id, r.resource, r.hour) not in covered]
    factors += _unmatched_lines(foreign)
    return factors


def _kind_of(line: BillLines, kinds: list[str]) -> str | None:
    """The kind of resource the line bills, if the tenant has one of that kind under its key."""
    if line.category == "Usage":
        kind = SERVICE_OF_KIND.get(line.service)
        return kind if kind in kinds else None
    return kinds[0] if line.category in ("Credit", "Adjustment") and kinds else None


def period_of(start: int, hourly: bool) -> tuple[int, int]:
    return (start // HOUR * HOUR, start // HOUR * HOUR + HOUR) if hourly else (start // DAY * DAY,
                                                                               start // DAY * DAY + DAY)


def _group_factors(kind: str, key: str, members: list[ResourceHour], lines: list[BillLines],
                   covered: set) -> list[Factor]:
    """The factors of one resource group's periods; marks the resource-hours they cover in ``covered``. A period
    whose resources cost nothing cannot be scaled: it is reported as an unmatched bill period."""
    hourly = all(line.end - line.start <= HOUR for line in lines)
    by_period: dict[tuple[int, int], list[BillLines]] = defaultdict(list)
    for line in lines:
        by_period[period_of(line.start, hourly)].append(line)
    out: list[Factor] = []
    for (start, end), period_lines in sorted(by_period.items()):
        inside = [r for r in members if start <= r.hour < end]
        modelled = sum(r.modelled for r in inside)
        bill = sum((line.cost for line in period_lines), Decimal(0))
        count = sum(line.lines for line in period_lines)
        if modelled <= 0:
            cluster = inside[0].cluster_id if inside else members[0].cluster_id
            out.append(Factor(BILL, cluster, "", key, start, start, end, 0.0, 0.0, False, 0.0, bill, count))
            continue
        factor = float(bill) / modelled
        for r in inside:
            covered.add((r.kind, r.cluster_id, r.resource, r.hour))
            out.append(Factor(kind, r.cluster_id, r.resource, key, r.hour, start, end, r.modelled, factor, True,
                              modelled, bill, count))
    return out


def _unmatched_lines(lines: list[BillLines]) -> list[Factor]:
    """Bill lines of the tenant's clusters that no resource is, per cluster, key and hour."""
    summed: dict[tuple[str, str, int, int], list] = {}
    for line in lines:
        start, end = period_of(line.start, line.end - line.start <= HOUR)
        entry = summed.setdefault((line.cluster, line.key, start, end), [Decimal(0), 0])
        entry[0] += line.cost
        entry[1] += line.lines
    return [Factor(BILL, cluster, "", key, start, start, end, 0.0, 0.0, False, 0.0, cost, count)
            for (cluster, key, start, end), (cost, count) in sorted(summed.items())]
