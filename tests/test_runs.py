"""The run ledger's rules (``kubecost_worker/store/ledger.py``) as pure functions: transitions and refusals."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from kubecost_worker.store.ledger import COMMIT_DEADLINE, CurrentRun, RunRecord, RunStatus, refusal
from kubecost_worker.hours import HOUR, hour_starts, iso, last_closed_hour

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
CURRENT = CurrentRun(uuid.UUID(int=1), coverage=1000, rows_written=200)


def test_a_run_ends_once_as_succeeded_failed_or_refused():
    run = RunRecord.start("t", T0, "rerun")
    assert run.status == RunStatus.RUNNING and run.finished_at is None
    done = run.succeeded(rows_written=3, total_cost=1.5, samples_seen=10, coverage=7)
    assert (done.status, done.rows_written, done.coverage, done.run_id) == (RunStatus.SUCCEEDED, 3, 7, run.run_id)
    assert run.failed("boom").error == "boom" and run.refused("less", 1, 0.5, 2, 1).status == RunStatus.REFUSED
    for ended in (done, run.failed("boom"), run.refused("less", 1, 0.5, 2, 1)):
        with pytest.raises(ValueError, match="cannot become"):
            ended.succeeded(1, 1.0, 1, 1)
    with pytest.raises(ValueError, match="hour boundary"):
        RunRecord.start("t", T0 + 1, "rerun")
    assert RunRecord.queued("t", T0, "scheduled").status == RunStatus.QUEUED


def test_a_run_may_not_commit_once_cleanup_could_take_it_for_dead():
    run = RunRecord.start("t", T0, "rerun")
    assert run.may_commit(run.started_at + COMMIT_DEADLINE - dt.timedelta(seconds=1))
    assert not run.may_commit(run.started_at + COMMIT_DEADLINE)


@pytest.mark.parametrize("coverage, rows, fraction, refused", [
    (1000, 200, 0.9, None),                           # the same data
    (1200, 230, 0.9, None),                           # late data: more
    (900, 180, 0.9, None),                            # exactly the fraction: kept
    (899, 200, 0.9, "899 sentinel samples against 1000"),
    (1000, 179, 0.9, "179 rows against 200"),
    (0, 0, 0.9, "0 sentinel samples against 1000, 0 rows against 200"),  # retention dropped the hour
    (0, 0, 0.0, None),                                # KCW_REFUSE_BELOW=0: never refuses
])
def test_a_run_with_markedly_less_data_than_the_current_run_is_refused(coverage, rows, fraction, refused):
    why = refusal(CURRENT, coverage, rows, fraction)
    if refused is None:
        assert why is None
    else:
        assert refused in why and str(CURRENT.run_id) in why and "--force" in why


def test_an_hour_without_a_current_run_is_never_refused():
    assert refusal(None, 0, 0, 1.0) is None
    assert refusal(CurrentRun(uuid.UUID(int=2), coverage=0, rows_written=0), 0, 0, 1.0) is None


def test_hour_starts_are_the_whole_hours_inside_the_range():
    assert hour_starts(T0, T0 + 3 * HOUR) == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert hour_starts(T0 + 1, T0 + 3 * HOUR - 1) == [T0 + HOUR]
    assert hour_starts(T0, T0) == [] and iso(T0) == "2026-01-01T00:00:00Z"


def test_the_last_closed_hour_is_the_newest_that_ended_by_then():
    assert last_closed_hour(T0 + 10 * HOUR) == T0 + 9 * HOUR  # 10:00: the 09:00 hour has just closed
    assert last_closed_hour(T0 + 10 * HOUR - 0.001) == T0 + 8 * HOUR
    assert last_closed_hour(T0 + 10 * HOUR + 59 * 60) == T0 + 9 * HOUR
