"""The lease ClickHouse holds (``store/lease.py``), in chDB: threads with their own clients stand in for processes
(chDB opens one path per process). At most one holder at a time, an unreleased lease expires by the server's
clock, a holder that outlived its lease is told before it writes."""

from __future__ import annotations

import threading
import time

import pytest

from kubecost_worker.errors import TransientError
from kubecost_worker.store import lease

from .helpers import ch_client

pytestmark = pytest.mark.needs_chdb
TABLE = "kcw_test_leases"


@pytest.fixture
def store(tmp_path):
    url = f"chdb://{tmp_path / 'ch'}"
    with ch_client(url) as client:
        lease.create_table(client, TABLE)
        yield url, client


def test_contenders_hold_the_lease_one_at_a_time(store):
    url, _ = store
    holding, most, epochs, errors = [], [0], [], []
    guard = threading.Lock()

    def contend():
        try:
            with ch_client(url) as client:
                for _ in range(3):
                    held = lease.acquire(client, TABLE, "name", seconds=60, wait_seconds=60)
                    with guard:
                        holding.append(held.holder)
                        most[0] = max(most[0], len(holding))
                        epochs.append(held.epoch)
                    time.sleep(0.02)
                    with guard:
                        holding.remove(held.holder)
                    held.release()
        except Exception as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert most[0] == 1
    assert sorted(epochs) == list(range(1, 19))  # every holding its own epoch, none lost


def test_an_unreleased_lease_expires_by_the_servers_clock_and_its_holder_is_told(store, monkeypatch):
    _, client = store
    killed = lease.acquire(client, TABLE, "name", seconds=1, wait_seconds=0)
    killed.check()
    # the worker's clock is of no account: a day fast changes nothing
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 86400)
    with pytest.raises(lease.LeaseBusy):
        lease.acquire(client, TABLE, "name", seconds=1, wait_seconds=0)
    taken = lease.acquire(client, TABLE, "name", seconds=60, wait_seconds=10)
    assert taken.epoch == killed.epoch + 1
    with pytest.raises(lease.LeaseLost):
        killed.check()
    killed.release()  # late: the new holder keeps its lease
    taken.check()


def test_a_busy_lease_is_a_transient_error_naming_it(store):
    _, client = store
    lease.acquire(client, TABLE, "export-optscale:t", seconds=60, wait_seconds=0)
    with pytest.raises(TransientError, match="export-optscale:t"):
        lease.acquire(client, TABLE, "export-optscale:t", seconds=60, wait_seconds=0.3)
    other = lease.acquire(client, TABLE, "another name", seconds=60, wait_seconds=0)
    assert other.epoch == 1


def test_a_released_lease_is_taken_at_once(store):
    _, client = store
    first = lease.acquire(client, TABLE, "name", seconds=60, wait_seconds=0)
    first.release()
    second = lease.acquire(client, TABLE, "name", seconds=60, wait_seconds=0)
    assert second.epoch == 2
    with pytest.raises(lease.LeaseLost):
        first.check()
