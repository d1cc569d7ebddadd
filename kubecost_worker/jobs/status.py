"""``kubecost-worker status``: the run ledger summarised per tenant."""

from __future__ import annotations

from itertools import groupby

from ..hours import HOUR, iso
from ..store.ledger import PENDING, RunStatus


def _ranges(hours: list[int]) -> list[str]:
    """[h, h+1h, h+2h, h+5h] -> ["h..h+3h (3 h)", "h+5h (1 h)"] as ISO times."""
    out = []
    for _, run in groupby(enumerate(hours), key=lambda pair: pair[1] - pair[0] * HOUR):
        block = [h for _, h in run]
        out.append(f"[{iso(block[0])}, {iso(block[-1] + HOUR)}) {len(block)} h")
    return out


def summarize(rows: list[tuple]) -> str:
    """``rows``: (tenant, hour, has a current run, latest status, latest error, rows, cost, unpriced nodes, Thanos
    queries, bytes and samples) per tenant-hour (``ClickHouseSink.ledger_summary``)."""
    if not rows:
        return "status: the run ledger is empty"
    lines = []
    for tenant, items in groupby(rows, key=lambda r: r[0]):
        items = list(items)
        done = [h for _, h, ok, *_ in items if ok]
        last_complete = max(done) if done else None
        known = {h for _, h, *_ in items}
        first = min(known)
        missing = [h for h in range(first, (last_complete or first) + HOUR, HOUR) if h not in set(done)]
        failures = [(h, error) for _, h, ok, latest, error, *_ in items if latest == RunStatus.FAILED]
        refusals = [(h, error) for _, h, ok, latest, error, *_ in items if latest == RunStatus.REFUSED]
        pending = [h for _, h, ok, latest, *_ in items if latest in PENDING and not ok]
        # the current runs that priced pods by the defaults or not at all: a node without price series
        unpriced = [(h, list(nodes)) for _, h, ok, *_, nodes, _, _, _ in items if ok and nodes]
        # what the current runs asked of Thanos (runs recorded before migration 0013 count nothing)
        measured = [(q, b, n) for _, _, ok, *_, q, b, n in items if ok and q]
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
