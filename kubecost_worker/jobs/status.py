"""``kubecost-worker status``: the run ledger and the daily tier summarised, one line per tenant and a total line.

Hours are told as ranges, at most ``MOST_RANGES`` of each kind and how many more: a tenant with 72 unpriced hours
in a row is one range, and a line stays a line whatever the ledger holds."""

from __future__ import annotations

import time
from collections import Counter
from itertools import groupby

from ..hours import HOUR, day_of, iso
from ..store.days import DayState
from ..store.ledger import PENDING, HourSummary, RunStatus
from ..store.reconcile import ReconciledDays

MOST_RANGES = 3
ERROR_CHARS = 300  # of the latest failure's or refusal's reason: enough for a refusal's figures and its remedy


def ranges(hours: list[int], most: int = MOST_RANGES) -> str:
    """Sorted ``hours`` as ``[from, to)`` ranges of consecutive hours, the first ``most`` and how many more."""
    blocks = []
    for _, run in groupby(enumerate(hours), key=lambda pair: pair[1] - pair[0] * HOUR):
        block = [h for _, h in run]
        blocks.append(f"[{iso(block[0])}, {iso(block[-1] + HOUR)})")
    return ", ".join(blocks[:most]) + (f" and {len(blocks) - most} more" if len(blocks) > most else "")


def _kind(name: str, hours: list[int], detail: str = "") -> str:
    return f"; {name} {len(hours)} h {ranges(hours)}{f' ({detail})' if detail else ''}" if hours else ""


def _days(states: list[tuple[int, DayState]], today: int) -> str:
    """The daily tier's days: built, sealed, and over but not summing their current hours (the sweep's to build)."""
    built = sum(s.build_id is not None for _, s in states)
    sealed = sum(s.sealed for _, s in states)
    stale = sum(not s.sealed and s.hours > 0 and not s.is_current and day < today for day, s in states)
    return f"daily tier: {built} day{'' if built == 1 else 's'}, {sealed} sealed, {stale} to rebuild"


def _reconciled(reconciled: ReconciledDays | None) -> str:
    if reconciled is None:
        return ""
    return (f"; reconciled with the bill: {reconciled.days} day{'' if reconciled.days == 1 else 's'}, "
            f"{reconciled.matched_share:.0%} of their list cost matched to bill lines")


def _tenant_line(tenant: str, items: list[HourSummary], states: list[tuple[int, DayState]], today: int,
                 counts: Counter) -> str:
    done = [h.hour for h in items if h.complete]
    last_complete = max(done) if done else None
    first = min(h.hour for h in items)
    done_set = set(done)
    missing = [hour for hour in range(first, (last_complete or first) + HOUR, HOUR) if hour not in done_set]
    failing = [h for h in items if h.last_status == RunStatus.FAILED]
    refused = [h for h in items if h.last_status == RunStatus.REFUSED]
    pending = [h.hour for h in items if h.last_status in PENDING and not h.complete]
    # the current runs that priced pods by the defaults or not at all: a node without price series
    unpriced = [h for h in items if h.complete and h.unpriced_nodes]
    nodes = sorted({node for h in unpriced for node in h.unpriced_nodes})
    # what the current runs asked of Thanos (runs recorded before migration 0013 count nothing)
    measured = [h for h in items if h.complete and h.thanos_queries]
    counts.update(tenants=1, done=len(done), missing=len(missing), failing=len(failing), refused=len(refused),
                  pending=len(pending), unpriced=len(unpriced))
    line = (f"{tenant}: last complete hour {iso(last_complete) if last_complete is not None else 'none'}; "
            f"{len(done)} h done" + _kind("missing", missing)
            + _kind("failing", [h.hour for h in failing], failing[-1].last_error[:ERROR_CHARS] if failing else "")
            + _kind("refused", [h.hour for h in refused], refused[-1].last_error[:ERROR_CHARS] if refused else "")
            + _kind("pending", pending)
            + _kind("unpriced", [h.hour for h in unpriced],
                    f"{len(nodes)} node{'s' if len(nodes) > 1 else ''} without price series: "
                    f"{', '.join(nodes[:5])}{', ...' if len(nodes) > 5 else ''}" if nodes else ""))
    if measured:
        line += (f"; thanos per hour {sum(h.thanos_queries for h in measured) / len(measured):.1f} queries, "
                 f"{sum(h.thanos_bytes for h in measured) / len(measured) / 1e6:.2f} MB, "
                 f"{sum(h.thanos_samples for h in measured) / len(measured):,.0f} samples")
    return line + (f"; {_days(states, today)}" if states else "")


def summarize(hours: list[HourSummary], day_states: dict[tuple[str, int], DayState] | None = None,
              now: float | None = None, reconciled: dict[str, ReconciledDays] | None = None) -> str:
    """``hours``: every tenant-hour of the ledger, by tenant and hour (``ClickHouseSink.ledger_summary``);
    ``day_states``: the tenants' days (``days.day_states``), for the daily tier's part, whose days before ``now``'s
    (default: the clock's) are over; ``reconciled``: the tenants' days reconciled with the bill
    (``reconcile.reconciled_days``)."""
    reconciled = reconciled or {}
    today = day_of(time.time() if now is None else now)
    states: dict[str, list[tuple[int, DayState]]] = {}
    for (tenant, day), state in sorted((day_states or {}).items()):
        states.setdefault(tenant, []).append((day, state))
    if not hours and not states:
        return "status: the run ledger is empty"
    counts: Counter = Counter()
    by_tenant = {tenant: list(items) for tenant, items in groupby(hours, key=lambda h: h.cloud_account_id)}
    lines = []
    for tenant in sorted(by_tenant.keys() | states.keys()):
        if tenant in by_tenant:
            line = _tenant_line(tenant, by_tenant[tenant], states.get(tenant, []), today, counts)
        else:  # every hour expired: the daily tier is what is kept
            counts.update(tenants=1)
            line = f"{tenant}: no hours kept; {_days(states[tenant], today)}"
        lines.append(line + _reconciled(reconciled.get(tenant)))
    every_day = [s for tenant_states in states.values() for s in tenant_states]
    lines.append(f"total: {counts['tenants']} tenants, {counts['done']} h done, {counts['missing']} missing, "
                 f"{counts['failing']} failing, {counts['refused']} refused, {counts['pending']} pending, "
                 f"{counts['unpriced']} unpriced" + (f"; {_days(every_day, today)}" if every_day else ""))
    return "\n".join(lines)
