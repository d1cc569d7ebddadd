"""The one unit of work: a tenant-hour job, as a JSON message.

    {"cloud_account_id": "acme-prod", "start": "2026-11-26T10:00:00Z", "end": "2026-11-26T11:00:00Z",
     "reason": "rerun", "requested_at": "2026-11-26T11:07:12Z", "force": true}

``start``/``end`` are ISO-8601 UTC (unix seconds are accepted too), on hour boundaries, ``start < end``, between
2000 and 2200 (``requested_at`` too); a message may cover several hours (a rerun range) up to
``KCW_MAX_RERUN_HOURS``. ``force`` (optional, a JSON boolean, default false) replaces hours even where the run
finds markedly less data than the stored one (``ledger.refusal``); it is written only when true, so a message
without it reads the same to a consumer that predates it. Anything else is an ``InvalidJob`` naming the problem,
whatever the body holds (a nesting deep enough to exhaust the parser, a number too large for a date): the message
goes to the dead-letter queue at once and the consumer goes on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from ..config import is_safe_tenant_id
from ..errors import TerminalError
from ..hours import HOUR, is_hour_start, iso, parse_time

FIELDS = ("cloud_account_id", "start", "end", "reason", "requested_at")
OPTIONAL_FIELDS = ("force",)
REASON = re.compile(r"[a-z][a-z0-9-]{0,31}")
MAX_MESSAGE_BYTES = 4096
# Times a job may name: wide enough for any real rerun, narrow enough that every date function works on them.
EARLIEST, LATEST = 946684800, 7258118400  # 2000-01-01, 2200-01-01 (UTC)


class InvalidJob(TerminalError):
    """A message that can never be processed."""


def _timestamp(name: str, value: Any) -> int | float:
    seconds = _seconds(name, value)
    if not EARLIEST <= seconds < LATEST:
        raise InvalidJob(f"{name} is outside 2000-2200: {str(value)[:40]!r}")
    return seconds


def _seconds(name: str, value: Any) -> int | float:
    if isinstance(value, bool):
        raise InvalidJob(f"{name} must be an ISO-8601 UTC time or unix seconds, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return parse_time(value, naive_is_utc=False)  # a fractional start fails the hour check
        except ValueError as exc:
            raise InvalidJob(f"{name} is {exc}: {value[:40]!r}") from None
    raise InvalidJob(f"{name} must be an ISO-8601 UTC time or unix seconds, got {type(value).__name__}")


@dataclass(frozen=True)
class Job:
    cloud_account_id: str
    start: int
    end: int
    reason: str
    requested_at: int
    force: bool = False

    @property
    def hour_starts(self) -> list[int]:
        return list(range(self.start, self.end, HOUR))

    def of_hours(self, hours: list[int]) -> "Job":
        """This job over some of its hours (consecutive): a batch of a range, or a failed hour retried alone."""
        return replace(self, start=hours[0], end=hours[-1] + HOUR)

    def to_json(self) -> bytes:
        body = {"cloud_account_id": self.cloud_account_id, "start": iso(self.start), "end": iso(self.end),
                "reason": self.reason, "requested_at": iso(self.requested_at)}
        return json.dumps({**body, "force": True} if self.force else body).encode()

    def describe(self) -> str:
        forced = " forced" if self.force else ""
        return f"{self.cloud_account_id} [{iso(self.start)}, {iso(self.end)}) {self.reason}{forced}"


def validate(job: Job, max_hours: int) -> Job:
    if not is_safe_tenant_id(job.cloud_account_id):
        raise InvalidJob(f"cloud_account_id outside the safe alphabet: {job.cloud_account_id[:80]!r}")
    for name in ("start", "end"):
        if not is_hour_start(getattr(job, name)):
            raise InvalidJob(f"{name} is not on an hour boundary: {getattr(job, name)}")
    if job.start >= job.end:
        raise InvalidJob(f"start must be before end: {iso(job.start)} >= {iso(job.end)}")
    if (job.end - job.start) // HOUR > max_hours:
        raise InvalidJob(f"range of {(job.end - job.start) // HOUR} hours is longer than KCW_MAX_RERUN_HOURS={max_hours}")
    if not REASON.fullmatch(job.reason):
        raise InvalidJob(f"reason must be a short lower-case word, got {job.reason[:40]!r}")
    return job


def parse(body: bytes | str, max_hours: int) -> Job:
    """A validated ``Job`` from a message body, or ``InvalidJob`` saying exactly what is wrong; never another
    exception, whatever the body."""
    try:
        return _parse(body, max_hours)
    except InvalidJob:
        raise
    except Exception as exc:  # RecursionError from deep nesting, OverflowError, MemoryError of a huge number...
        raise InvalidJob(f"unreadable message: {type(exc).__name__}: {str(exc)[:200]}") from None


def _parse(body: bytes | str, max_hours: int) -> Job:
    if isinstance(body, str):
        body = body.encode()
    if len(body) > MAX_MESSAGE_BYTES:
        raise InvalidJob(f"message of {len(body)} bytes is larger than {MAX_MESSAGE_BYTES}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJob(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidJob(f"expected a JSON object, got {type(data).__name__}")
    missing = [f for f in FIELDS if f not in data]
    unknown = sorted(set(data) - set(FIELDS) - set(OPTIONAL_FIELDS))
    if missing or unknown:
        raise InvalidJob("; ".join(filter(None, [missing and f"missing fields: {', '.join(missing)}",
                                                 unknown and f"unknown fields: {', '.join(unknown)[:200]}"])))
    tenant, reason, force = data["cloud_account_id"], data["reason"], data.get("force", False)
    if not isinstance(tenant, str) or not isinstance(reason, str):
        raise InvalidJob("cloud_account_id and reason must be strings")
    if not isinstance(force, bool):
        raise InvalidJob(f"force must be true or false, got {str(force)[:40]!r}")
    job = Job(tenant, _timestamp("start", data["start"]), _timestamp("end", data["end"]), reason,
              _timestamp("requested_at", data["requested_at"]), force)
    return validate(job, max_hours)
