"""Job messages and the scheduler's planning, as pure functions with a controllable clock."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kubecost_worker.jobs.messages import InvalidJob, Job, parse
from kubecost_worker.jobs.planning import catchup_window, last_due_hour, plan
from kubecost_worker.jobs.scheduler import _as_jobs
from kubecost_worker.store.ledger import HourState

H = 3600
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
GOOD = {"cloud_account_id": "acme-1", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:00:00Z",
        "reason": "rerun", "requested_at": "2026-01-01T03:04:05Z"}


def body(**changes):
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def test_a_valid_message_round_trips():
    job = parse(body(), max_hours=24)
    assert job == Job("acme-1", T0, T0 + 2 * H, "rerun", T0 + 3 * H + 245)
    assert job.hour_starts == [T0, T0 + H]
    assert parse(job.to_json(), 24) == job
    assert parse(body(start=T0, end=T0 + H), 24).hour_starts == [T0]  # unix seconds are accepted too


def test_a_job_over_some_of_its_hours_keeps_everything_else():
    job = Job("acme-1", T0, T0 + 6 * H, "rerun", T0 + 7 * H, force=True)
    assert job.of_hours([T0, T0 + H]) == Job("acme-1", T0, T0 + 2 * H, "rerun", T0 + 7 * H, force=True)
    assert job.of_hours([T0 + 5 * H]).hour_starts == [T0 + 5 * H]


def test_force_is_optional_and_written_only_when_true():
    assert parse(body(), 24).force is False and parse(body(force=False), 24).force is False
    forced = parse(body(force=True), 24)
    assert forced.force is True and parse(forced.to_json(), 24) == forced
    assert "force" not in json.loads(parse(body(), 24).to_json())  # what a consumer that predates it reads


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (body(start=...), "missing fields: start"),
    (body(extra="x"), "unknown fields: extra"),
    (body(start="2026-01-01T02:00:00Z"), "start must be before end"),
    (body(start="2026-01-01T00:30:00Z"), "not on an hour boundary"),
    (body(start="2026-01-01T00:00:00.5Z"), "not on an hour boundary"),
    (body(end="2026-03-01T00:00:00Z"), "longer than KCW_MAX_RERUN_HOURS"),
    (body(cloud_account_id='x"}'), "safe alphabet"),
    (body(cloud_account_id=""), "safe alphabet"),
    (body(cloud_account_id=7), "must be strings"),
    (body(start="yesterday"), "not an ISO-8601 time"),
    (body(start="2026-01-01T00:00:00"), "no time zone"),
    (body(start=True), "ISO-8601 UTC time or unix seconds"),
    (body(reason="Bad Reason!"), "reason"),
    (b"{" + b" " * 5000 + b"}", "larger than"),
    (body(force="yes"), "force must be true or false"),
    (body(force=1), "force must be true or false"),
])
def test_invalid_messages_say_what_is_wrong(raw, reason):
    with pytest.raises(InvalidJob, match=reason):
        parse(raw, max_hours=24)


def test_lag_decides_which_hour_is_due():
    # 10:04 with a 5-minute lag: the 09:00 hour closed 4 minutes ago: not yet; 08:00 is the newest due
    assert last_due_hour(T0 + 10 * H + 4 * 60, lag_minutes=5) == T0 + 8 * H
    assert last_due_hour(T0 + 10 * H + 5 * 60, lag_minutes=5) == T0 + 9 * H
    assert last_due_hour(T0 + 10 * H, lag_minutes=0) == T0 + 9 * H


def test_catchup_window_is_bounded():
    window = catchup_window(T0 + 100 * H + 600, lag_minutes=5, max_catchup_hours=24)
    assert len(window) == 24 and window[-1] == T0 + 99 * H and window[0] == T0 + 76 * H


def state(coverage=None, status="succeeded", at=T0):
    return HourState(coverage, status, dt.datetime.fromtimestamp(at, dt.timezone.utc))


TRUST = dt.datetime.fromtimestamp(T0 + 50 * H, dt.timezone.utc)


def test_plan_fills_gaps_from_the_first_data_on():
    window = [T0 + h * H for h in range(10)]
    data = {h: 100 for h in window[3:]}  # the tenant's data starts at hour 3
    states = {window[4]: state(100), window[6]: state(100)}
    due = plan(window, data, {}, states, TRUST)
    assert due == [(window[3], "catch-up"), (window[5], "catch-up"), (window[7], "catch-up"),
                   (window[8], "catch-up"), (window[9], "scheduled")]


def test_plan_processes_hours_without_data_after_the_first_data():
    window = [T0 + h * H for h in range(4)]
    due = plan(window, {window[0]: 5}, {}, {}, TRUST)  # the cluster stopped sending after hour 0
    assert [h for h, _ in due] == window


def test_plan_does_nothing_for_a_tenant_without_data():
    assert plan([T0, T0 + H], {}, {}, {}, TRUST) == []


def test_plan_skips_pending_hours_unless_their_record_is_too_old():
    window = [T0, T0 + H]
    data = {T0: 1, T0 + H: 1}
    fresh = {T0: state(status="queued", at=T0 + 60 * H), T0 + H: state(status="running", at=T0 + 60 * H)}
    assert plan(window, data, {}, fresh, TRUST) == []
    stale = {T0: state(status="queued", at=T0 + 10 * H), T0 + H: state(status="running", at=T0 + 10 * H)}
    assert plan(window, data, {}, stale, TRUST) == [(T0, "catch-up"), (T0 + H, "scheduled")]


def test_plan_retries_failed_hours():
    window = [T0, T0 + H]
    states = {T0: state(status="failed"), T0 + H: state(50)}
    assert plan(window, {T0: 1, T0 + H: 1}, {}, states, TRUST) == [(T0, "catch-up")]


def test_plan_rechecks_late_data():
    window = [T0 + h * H for h in range(4)]
    data = {h: 100 for h in window}
    states = {h: state(100) for h in window}
    # a succeeded hour is re-run only when Thanos now holds more samples than the run saw
    assert plan(window, data, {window[2]: 100, window[3]: 100}, states, TRUST) == []
    assert plan(window, data, {window[2]: 100, window[3]: 130}, states, TRUST) == [(window[3], "late-data")]
    # a late-data rerun already queued is not queued twice
    states[window[3]] = state(100, status="queued", at=T0 + 60 * H)
    assert plan(window, data, {window[3]: 130}, states, TRUST) == []


def test_consecutive_catch_up_hours_become_one_range_and_the_other_hours_jobs_of_their_own():
    due = [(T0, "catch-up"), (T0 + H, "catch-up"), (T0 + 2 * H, "late-data"), (T0 + 3 * H, "catch-up"),
           (T0 + 4 * H, "catch-up"), (T0 + 6 * H, "catch-up"), (T0 + 7 * H, "scheduled")]
    jobs = _as_jobs("acme-1", due, T0 + 8 * H)
    assert [(j.start, j.end, j.reason) for j in jobs] == [
        (T0, T0 + 2 * H, "catch-up"), (T0 + 2 * H, T0 + 3 * H, "late-data"), (T0 + 3 * H, T0 + 5 * H, "catch-up"),
        (T0 + 6 * H, T0 + 7 * H, "catch-up"), (T0 + 7 * H, T0 + 8 * H, "scheduled")]
    assert {(j.cloud_account_id, j.requested_at, j.force) for j in jobs} == {("acme-1", T0 + 8 * H, False)}
    assert _as_jobs("acme-1", [], T0) == []
