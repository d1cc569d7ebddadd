"""The tenant-hour path's pure parts: the one batching rule, a batch's size, a backfill's summary of outcomes, the
order a batch's hours are read ahead in."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from kubecost_worker.config import load_config
from kubecost_worker.hours import HOUR
from kubecost_worker.pipeline import AHEAD_HOURS, HourOutcome, HoursSummary, batch_size, next_batch
from kubecost_worker.source.extract import READ_AHEAD, HourFetch, read_ahead
from kubecost_worker.source.thanos import ThanosBadAnswer, ThanosLoad
from kubecost_worker.store.ledger import RunRecord, RunStatus

H = HOUR
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize("hours, most, batch", [
    ([], 6, []),
    ([T0], 6, [T0]),
    ([T0, T0 + H, T0 + 2 * H], 6, [T0, T0 + H, T0 + 2 * H]),
    ([T0, T0 + H, T0 + 2 * H], 2, [T0, T0 + H]),
    ([T0, T0 + H, T0 + 2 * H], 1, [T0]),
    ([T0, T0 + H, T0 + 3 * H, T0 + 4 * H], 6, [T0, T0 + H]),  # a gap ends the batch
    ([T0, T0 + 2 * H], None, [T0]),
    ([T0 + k * H for k in range(100)], None, [T0 + k * H for k in range(100)]),  # no limit: the whole run
    ([], 6, []),
])
def test_a_batch_is_the_consecutive_hours_the_list_begins_with(hours, most, batch):
    assert next_batch(hours, most) == batch


def test_a_list_is_its_batches_one_after_another():
    hours = [T0 + k * H for k in (0, 1, 2, 3, 4, 7, 8, 10)]
    batches = []
    while hours:
        batches.append(next_batch(hours, 3))
        hours = hours[len(batches[-1]):]
    assert [[(h - T0) // H for h in batch] for batch in batches] == [[0, 1, 2], [3, 4], [7, 8], [10]]


@pytest.mark.parametrize("run, most, sizes", [
    (24, 7, [6, 6, 6, 6]), (24, 24, [24]), (25, 24, [13, 12]), (30, 7, [6, 6, 6, 6, 6]), (8, 7, [4, 4]),
    (7, 7, [7]), (5, 1, [1, 1, 1, 1, 1]), (23, 6, [6, 6, 6, 5]),
])
def test_a_run_longer_than_a_batch_is_cut_in_as_few_batches_of_even_sizes(run, most, sizes):
    hours, found = [T0 + k * H for k in range(run)], []
    while hours:
        found.append(len(next_batch(hours, most)))
        hours = hours[found[-1]:]
    assert found == sizes


def test_a_batch_is_sized_by_the_tenants_last_hour():
    config = load_config({"KCW_BATCH_HOURS": "24", "KCW_BATCH_SERIES_HOURS": "200000"})
    assert batch_size(config, None) == 1  # not seen yet: its first hour alone tells its size
    assert batch_size(config, 1_000) == 24 and batch_size(config, 0) == 24  # small: KCW_BATCH_HOURS
    # half the budget, so that the next batch is fetched while one runs
    assert batch_size(config, 7_000) == 14 and batch_size(config, 14_000) == 7 and batch_size(config, 16_000) == 6
    # where half would hold fewer than AHEAD_HOURS, all of it
    assert batch_size(config, 17_000) == 11 and batch_size(config, 28_000) == 7 and batch_size(config, 40_000) == 5
    assert batch_size(config, 150_000) == 1 and batch_size(config, 10_000_000) == 1
    # the README's tenants at the default budget: 1,000 pods (14,000 series) 23 hours and 2,000 pods (28,000) 11,
    # fetched ahead; 10,000 pods (140,000) 4 alone
    default = load_config({})
    assert batch_size(default, 14_000) == 23 and batch_size(default, 28_000) == 11
    assert batch_size(default, 140_000) == 4
    assert batch_size(load_config({"KCW_BATCH_HOURS": "6"}), 1_000) == 6
    assert batch_size(load_config({"KCW_BATCH_HOURS": "1"}), 10) == 1


def test_two_batches_of_a_tenant_fit_the_budget_wherever_each_is_cut_to_half_of_it():
    """What ``Pipeline._size_ahead`` then finds: a batch sized by ``batch_size`` where half the budget holds
    ``AHEAD_HOURS`` or more leaves room for the next batch of the same tenant; elsewhere it takes the room of two."""
    config = load_config({"KCW_BATCH_SERIES_HOURS": "200000"})
    for series in range(1_000, 200_000, 500):
        hours = batch_size(config, series)
        if config.batch_series_hours // series // 2 >= AHEAD_HOURS:
            assert 2 * hours * series <= config.batch_series_hours, series
        else:
            assert 2 * hours * series > config.batch_series_hours, series


def test_a_backfill_counts_each_hour_by_how_it_ended():
    run = RunRecord.start("t", T0, "backfill")
    summary = HoursSummary(tenant_count=2, hour_count=2)
    for outcome in (HourOutcome(run.succeeded(10, 1.25, 100, 50)), HourOutcome(run.succeeded(5, 0.5, 10, 5)),
                    HourOutcome(run.failed("ThanosUnavailable: down"), "transient", "down"),
                    HourOutcome(run.refused("less", 1, 0.1, 1, 1))):
        summary.count(outcome)
    assert (summary.done, summary.failed, summary.refused, summary.rows, summary.total_cost) == (2, 1, 1, 15, 1.75)
    assert summary.line().startswith("backfill: 2/4 tenant-hours (2 tenants x 2 hours), 15 rows, total cost 1.7500")
    assert "1 failed, 1 refused (less data than stored; --force replaces)" in summary.line()
    assert "refused" not in dataclasses.replace(summary, refused=0).line()


def test_an_outcome_reads_as_its_record():
    run = RunRecord.start("t", T0 + H, "rerun")
    failed = HourOutcome(run.failed("TerminalError: rejected"), "terminal", "rejected")
    assert (failed.status, failed.hour, failed.kind, failed.error) == (RunStatus.FAILED, T0 + H, "terminal",
                                                                        "rejected")
    assert HourOutcome(run.succeeded(1, 1.0, 1, 1)).kind is None


def test_a_batchs_hours_are_read_ahead_in_turn_each_keeping_its_own_error():
    """``read_ahead``: the hours come in their order; when an hour's turn comes the next ``READ_AHEAD`` are being
    read (Thanos answers them while it is priced), never more; an hour's error is raised by its own ``read``."""
    started: list[int] = []
    lock = threading.Lock()

    def reader(k: int):
        def read():
            with lock:
                started.append(k)
            if k == 2:
                raise ThanosBadAnswer("hour 2's own")
            return k
        return read

    fetches = [HourFetch(start=k, read=reader(k), own=ThanosLoad()) for k in range(7)]
    turns = []
    for k, fetch in enumerate(read_ahead(fetches)):
        ahead = min(k + READ_AHEAD, len(fetches) - 1)
        deadline = time.monotonic() + 10
        while len(started) < ahead + 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        with lock:
            assert sorted(started) == list(range(ahead + 1)), (k, started)
        if k == 2:
            with pytest.raises(ThanosBadAnswer, match="hour 2's own"):
                fetch.read()
        else:
            assert fetch.read() == k
        turns.append(fetch.start)
    assert turns == list(range(7)) and READ_AHEAD > 1
