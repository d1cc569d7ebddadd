"""Hours and times, for every part of the worker (the model included): the hour as the unit of work, UTC
conversions, and the times an operator or a message may write."""

from __future__ import annotations

import datetime as dt
import time

HOUR = 3600
DAY = 86400


def utc(ts: int | float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def last_closed_hour(at: float | None = None) -> int:
    """The start of the newest hour that has closed by unix time ``at`` (the clock where not given)."""
    return int((time.time() if at is None else at) // HOUR * HOUR) - HOUR


def iso(ts: int | float) -> str:
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str, *, naive_is_utc: bool) -> int | float:
    """ISO-8601 (with a ``Z`` or an offset) or unix seconds, as unix seconds (a fraction kept, for the callers'
    hour checks to refuse). A time without a zone is UTC with ``naive_is_utc`` (what an operator types on the
    command line) and an error without it (job messages come from programs, which must say). ``ValueError`` says
    what is wrong."""
    raw = value.strip()
    if raw.lstrip("-").isdigit():
        return int(raw)
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise ValueError("a time with no time zone (write it in UTC with a Z)")
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    seconds = parsed.timestamp()
    return int(seconds) if seconds.is_integer() else seconds


def is_hour_start(ts: int | float) -> bool:
    """Whether unix time ``ts`` is the start of an hour: the unit of work, as runs, jobs and batches take it (a
    fraction of a second is not)."""
    return ts % HOUR == 0


def day_of(ts: int | float) -> int:
    """The start of the UTC day holding unix time ``ts``."""
    return int(ts) // DAY * DAY


def whole_days(start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` widened to whole UTC days."""
    return day_of(start), -(-end // DAY) * DAY


def hour_starts(start: int, end: int) -> list[int]:
    """The whole hours in ``[start, end)``: each hour that starts at or after ``start`` and ends by ``end``."""
    first = -(-start // HOUR) * HOUR
    return list(range(first, end - HOUR + 1, HOUR))
