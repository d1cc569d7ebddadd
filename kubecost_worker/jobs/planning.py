"""Which tenant-hours are due: pure functions of the clock, Thanos's sample counts and the run ledger.

A tick enqueues, per tenant:
- every closed hour (closed at least ``lag`` ago) in the catch-up window, from the tenant's first data on,
  that has no successful run and is not already pending (queued or running, recorded recently enough to
  be trusted): the newest one as ``scheduled``, older ones as ``catch-up``;
- every recent hour (``recheck_hours``) whose sentinel samples in Thanos (``ledger.SENTINEL_METRICS``) grew
  past the coverage its current run saw: ``late-data``.
"""

from __future__ import annotations

import datetime as dt

from ..hours import HOUR, last_closed_hour
from ..store.ledger import HourState


def last_due_hour(now: float, lag_minutes: int) -> int:
    """Start of the newest hour that closed at least ``lag_minutes`` before ``now``."""
    return last_closed_hour(now - lag_minutes * 60)


def catchup_window(now: float, lag_minutes: int, max_catchup_hours: int) -> list[int]:
    last = last_due_hour(now, lag_minutes)
    return list(range(last - (max_catchup_hours - 1) * HOUR, last + HOUR, HOUR))


def plan(window: list[int], data_counts: dict[int, int], recheck_counts: dict[int, int],
         states: dict[int, HourState], trusted_after: dt.datetime) -> list[tuple[int, str]]:
    """``(hour, reason)`` to enqueue, oldest first.

    ``data_counts``: sentinel samples per hour of the window in Thanos (the first hour with data is the
    tenant's first data); ``recheck_counts``: the same counts for the recent hours to re-check;
    ``trusted_after``: pending records older than this are taken as lost (a dead worker, an in-memory
    queue that died with its process) and the hour is enqueued again.
    """
    with_data = [h for h in window if data_counts.get(h, 0) > 0]
    if not with_data:
        return []
    first_data = with_data[0]
    newest = window[-1]
    due: list[tuple[int, str]] = []
    for hour in window:
        if hour < first_data:
            continue
        state = states.get(hour)
        if state is not None and state.is_pending(trusted_after):
            continue
        if state is None or state.current_coverage is None:
            due.append((hour, "scheduled" if hour == newest else "catch-up"))
        elif recheck_counts.get(hour, 0) > state.current_coverage:
            due.append((hour, "late-data"))
    return due
