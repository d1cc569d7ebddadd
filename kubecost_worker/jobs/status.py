"""``kubecost-worker status``: the run ledger summarised per tenant."""

from __future__ import annotations

from itertools import groupby

from ..hours import HOUR, iso
from ..store.ledger import PENDING, HourSummary, RunStatus


def _ranges(hours: list[int]) -> list[str]:
    """[h, h+1h, h+2h, h+5h] -> ["h..h+3h (3 h)", "h+5h (1 h)"] as ISO times."""
    out = []
    for _, run in groupby(enumerate(hours), key=lambda pair: pair[1] - pair[0] * HOUR):
        block = [h for _, h in run]
        out.append(f"[{iso(block[0])}, {iso(block[-1] + HOUR)}) {len(block)} h")
    return out


def summarize(hours: list[HourSummary]) -> str:
    """``hours``: every tenant-hour of the ledger, by tenant and hour (``ClickHouseSink.ledger_summary``)."""
    if not hours:
        return "status: the run ledger is empty"
    lines = []
    for tenant, items in groupby(hours, key=lambda h: h.cloud_account_id):
        items = list(items)
        done = [h.hour for h in items if h.complete]
        last_complete = max(done) if done else None
        first = min(h.hour for h in items)
        missing = [hour for hour in range(first, (last_complete or first) + HOUR, HOUR) if hour not in set(done)]
        failures = [(h.hour, h.last_error) for h in items if h.last_status == RunStatus.FAILED]
        refusals = [(h.hour, h.last_error) for h in items if h.last_status == RunStatus.REFUSED]
        pending = [h.hour for h in items if h.last_status in PENDING and not h.complete]
        # the current runs that priced pods by the defaults or not at all: a node without price series
        unpriced = [(h.hour, list(h.unpriced_nodes)) for h in items if h.complete and h.unpriced_nodes]
        # what the current runs asked of Thanos (runs recorded before migration 0013 count nothing)
        measured = [(h.thanos_queries, h.thanos_bytes, h.thanos_samples) for h in items
                    if h.complete and h.thanos_queries]
        lines.append(f"{tenant}: last complete hour {iso(last_complete) if last_complete is not None else 'none'}, "
                     f"{len(done)} hours done, {len(missing)} missing, {len(failures)} failing, "
                     f"{len(refusals)} refused, {len(pending)} pending"
                     + (f", {len(unpriced)} with unpriced nodes" if unpriced else ""))
        if measured:
            queries, received, samples = (sum(m[i] for m in measured) / len(measured) for i in range(3))
            lines.append(f"  thanos   per tenant-hour: {queries:.1f} queries, {received / 1e6:.2f} MB, "
                         f"{samples:,.0f} samples (mean of {len(measured)} current runs)")
        for block in _ranges(missing):
            lines.append(f"  gap      {block}")
        for hour, error in failures[:20]:
            lines.append(f"  failed   {iso(hour)}: {error[:160]}")
        for hour, error in refusals[:20]:
            lines.append(f"  refused  {iso(hour)}: {error[:200]}")
        for hour, nodes in unpriced[:20]:
            lines.append(f"  unpriced {iso(hour)}: {len(nodes)} node{'s' if len(nodes) > 1 else ''} without price "
                         f"series ({', '.join(nodes[:5])}{', ...' if len(nodes) > 5 else ''})")
    return "\n".join(lines)
