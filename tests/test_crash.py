"""Crash safety: `kubecost-worker once` over 12 hours x 2 tenants, killed with SIGKILL at random moments and
restarted until it completes. After every kill the stored view holds only whole, exact hours; at the end every
hour is there once and equals the ground truth (which a clean run also matches)."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import time

import pytest

from kubecost_worker.devtools.accuracy import compare_with_ground_truth, stored_rows
from kubecost_worker.store.clickhouse import ClickHouseSink

from .helpers import WORKER, Cluster, ch_client, lag_minutes_until, run_worker

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
TENANTS = ["crash-tenant-a", "crash-tenant-b"]
HOURS = 12
END = int(time.time()) // 3600 * 3600
START = END - HOURS * 3600
MIN_KILLS = 5
MAX_ATTEMPTS = 40


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("crash"), TENANTS, START, HOURS, pods=10, seed=11)
    yield c
    c.prometheus.stop()


def env_for(cluster, ch_url):
    return {**cluster.worker_env(ch_url), "KCW_LAG_MINUTES": lag_minutes_until(END),
            "KCW_MAX_CATCHUP_HOURS": str(HOURS + 1),
            "KCW_LOG_LEVEL": "warning", "PATH": os.environ["PATH"]}


def inspect(ch_url, truth):
    """After a kill: (hours visible, runs with rows but no commit); asserts the visible hours are exact."""
    with ch_client(ch_url) as client:
        sink = ClickHouseSink(client)
        visible = {(r["cloud_account_id"], r["hour"]) for r in stored_rows(sink)}
        expected = [r for r in truth if (r["cloud_account_id"], r["hour"]) in visible]
        accuracy = compare_with_ground_truth(stored_rows(sink), expected)
        assert accuracy.exact and accuracy.max_rel_error < 1e-9, accuracy
        per_hour = client.query("SELECT cloud_account_id, hour, uniqExact(run_id) FROM k8s_expenses_current "
                                "GROUP BY 1, 2 HAVING uniqExact(run_id) != 1").result_rows
        assert per_hour == []
        uncommitted = client.query(
            "SELECT count() FROM (SELECT DISTINCT run_id FROM k8s_expenses) AS written "
            "WHERE run_id NOT IN (SELECT run_id FROM k8s_expense_runs WHERE status = 'succeeded')").result_rows[0][0]
    return visible, uncommitted


SLOW_COMMIT = """
import os, time
from kubecost_worker.store import clickhouse
_record = clickhouse.ClickHouseSink.record
def record(self, *runs):
    if any(run.status == "succeeded" for run in runs):  # rows inserted, commit not yet recorded: widen that window
        time.sleep(float(os.environ["CRASH_TEST_SLOW_COMMIT"]))
    return _record(self, *runs)
clickhouse.ClickHouseSink.record = record
"""


def test_sigkill_at_random_moments_never_leaves_a_partial_or_doubled_hour(cluster, tmp_path):
    truth = cluster.truth
    clean_url = f"chdb://{tmp_path / 'clean'}"
    env = env_for(cluster, clean_url)
    assert run_worker("migrate", env=env).returncode == 0
    started = time.time()
    clean = run_worker("once", env={**env, "KCW_LOG_FORMAT": "json", "KCW_LOG_LEVEL": "info"})
    clean_seconds = time.time() - started
    assert clean.returncode == 0, clean.stderr[-1000:]
    with ch_client(clean_url) as client:
        assert compare_with_ground_truth(stored_rows(ClickHouseSink(client)), truth).exact

    # Fault injection from the test's side (no hook in the worker): a sitecustomize that makes the moment
    # between a run's inserts and its commit 0.15 s long, so that random kills land there often.
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_COMMIT)
    ch_url = f"chdb://{tmp_path / 'killed'}"
    # the hook's directory first, then the caller's path (a checkout run with PYTHONPATH keeps running its own code)
    pythonpath = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH", "")) if p)
    env = {**env_for(cluster, ch_url), "PYTHONPATH": pythonpath, "CRASH_TEST_SLOW_COMMIT": "0.15",
           "KCW_LOG_FORMAT": "json", "KCW_LOG_LEVEL": "info"}
    assert run_worker("migrate", env=env).returncode == 0
    rng = random.Random(20261126)
    kills = kills_mid_write = 0
    backfill = [str(WORKER), "backfill", "--start", str(START), "--end", str(END)]
    for _ in range(MAX_ATTEMPTS):
        if kills >= MIN_KILLS and kills_mid_write:
            break
        process = subprocess.Popen(backfill, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, clean_seconds + 0.15 * len(TENANTS) * HOURS))
        if process.poll() is not None:
            continue  # finished before the kill: every hour was rewritten once more, go again
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        _, uncommitted = inspect(ch_url, truth)
        kills_mid_write += uncommitted > 0
    print(f"\ncrash test: {kills} SIGKILLs of a backfill of {HOURS} hours x {len(TENANTS)} tenants, "
          f"{kills_mid_write} of them between a run's insert and its commit; clean run {clean_seconds:.1f} s")
    assert kills >= MIN_KILLS and kills_mid_write >= 1

    # restart: the scheduler's catch-up finds in the ledger whatever hour never succeeded
    recovered = run_worker("once", env={k: v for k, v in env.items() if k != "PYTHONPATH"})
    assert recovered.returncode == 0, recovered.stderr[-1000:]
    with ch_client(ch_url) as client:
        accuracy = compare_with_ground_truth(stored_rows(ClickHouseSink(client)), truth)
        assert accuracy.exact and accuracy.max_rel_error < 1e-9
        totals = sorted(client.query("SELECT cloud_account_id, hour, sum(total_cost) FROM k8s_expenses_current "
                                     "GROUP BY 1, 2").result_rows)
        once_each = client.query("SELECT countIf(n != 1) FROM (SELECT cloud_account_id, hour, "
                                 "uniqExact(run_id) AS n FROM k8s_expenses_current GROUP BY 1, 2)").result_rows
        leftovers = client.query("SELECT count() FROM k8s_expenses WHERE run_id NOT IN "
                                 "(SELECT run_id FROM k8s_expenses_current)").result_rows[0][0]
    # cleanup after the crashes: `gc` removes superseded and failed runs and keeps the killed runs' rows while they
    # are recent (they might be another consumer's, still writing); once stale, those go too
    cleaned = run_worker("gc", env={k: v for k, v in env.items() if k != "PYTHONPATH"})
    assert cleaned.returncode == 0 and "gc: removed the rows of" in cleaned.stdout, cleaned.stderr[-1000:]
    with ch_client(ch_url) as client:
        sink = ClickHouseSink(client)
        after_gc = sorted(client.query("SELECT cloud_account_id, hour, sum(total_cost) FROM k8s_expenses_current "
                                       "GROUP BY 1, 2").result_rows)
        assert after_gc == totals
        sink.collect_garbage(stale_after=dt.timedelta(0))
        assert sorted(client.query("SELECT cloud_account_id, hour, sum(total_cost) FROM k8s_expenses_current "
                                   "GROUP BY 1, 2").result_rows) == totals
        assert client.query("SELECT count() FROM k8s_expenses WHERE run_id NOT IN "
                            "(SELECT run_id FROM k8s_expenses_current)").result_rows == [(0,)]
    with ch_client(clean_url) as client:
        clean_totals = sorted(client.query("SELECT cloud_account_id, hour, sum(total_cost) FROM k8s_expenses_current "
                                           "GROUP BY 1, 2").result_rows)
    assert once_each == [(0,)] and len(totals) == len(TENANTS) * HOURS
    assert [(t, h) for t, h, _ in totals] == [(t, h) for t, h, _ in clean_totals]
    assert [c for *_, c in totals] == pytest.approx([c for *_, c in clean_totals], rel=1e-12)
    print(f"crash test: after recovery {len(totals)} tenant-hours, each once; {leftovers} rows of superseded and "
          "killed runs underneath (invisible) until cleanup, none after")
