"""The hourly tick: find the due tenant-hours (``planning.plan``) and enqueue them as jobs, then remove the rows of
the runs that can no longer become current (``ClickHouseSink.collect_garbage``: one batch per tick), then keep the
daily tier (``store/days.py``): rebuild the days whose hours changed and were not rebuilt yet, and expire the hours of
the days past ``KCW_RETENTION_DAYS``, each day sealed in the daily tier first (``cleanup.expire_hours``).

APScheduler 3.11 drives it: a cron trigger at ``KCW_SCHEDULE_MINUTE`` past every hour, ``max_instances=1`` and
``coalesce=True`` (a tick that overran, or ticks missed while the process slept, run once). A second scheduler
by mistake only enqueues duplicates, and processing a tenant-hour twice replaces it exactly.

The ledger's records are stamped by the ClickHouse server's clock, so their ages (which pending records to trust,
which hours changed since the last cleanup) are measured against the server's time, never this process's clock:
replicas and CronJobs on several nodes need not agree on the time. ``clock`` only picks the due hours and the
first day whose hours are kept: a day boundary, which a few minutes' offset moves by as much, never more.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
from collections import Counter
from typing import Any, Callable

import structlog

from .. import telemetry
from ..errors import WorkerError
from ..hours import DAY, HOUR, day_of
from ..model.series import NODE_CPU_HOURLY_COST
from ..pipeline import next_batch
from ..store import cleanup, days
from ..store.ledger import SENTINEL_METRICS, STALE_RUN, RunRecord, RunStatus
from ..source.extract import hourly_counts
from .broker import Broker
from .messages import Job
from .planning import catchup_window, plan

log = structlog.get_logger(__name__)
PRESENCE_METRICS = (NODE_CPU_HOURLY_COST,)  # cheap: one series per node
# Each tick's cleanup looks at the hours whose ledger changed since the previous cleanup began, less this margin:
# a run that died becomes removable STALE_RUN after it started, with no record to say so; the first tick of a
# process looks at every hour.
CLEANUP_OVERLAP = 2 * STALE_RUN


class Scheduler:
    def __init__(self, pipeline: Any, broker: Broker, clock: Callable[[], float] = time.time):
        self.pipeline = pipeline
        self.config = pipeline.config
        self.broker = broker
        self.clock = clock
        # With an in-memory queue, pending records from before this process started are not trusted: that queue died
        # with its process. The start is placed on the server's clock by the (monotonic) time elapsed since.
        self._started = time.monotonic()
        self.last_cleanup: dt.datetime | None = None  # the server's time when the last cleanup read the ledger
        self.last_sweep: dt.datetime | None = None  # the server's time when the last complete sweep of days began

    def _trusted_after(self) -> dt.datetime:
        """Pending records older than this (the server's clock) are taken as lost and their hours enqueued again."""
        server_now = self.pipeline.sink.server_now()
        stale = server_now - STALE_RUN
        if not self.broker.is_memory:
            return stale
        return max(stale, server_now - dt.timedelta(seconds=time.monotonic() - self._started))

    def due_jobs(self) -> list[Job]:
        config = self.config
        now = self.clock()
        # an hour before the kept days would be computed only to expire: its day is sealed, or about to be
        window = [h for h in catchup_window(now, config.lag_minutes, config.max_catchup_hours)
                  if h >= self.first_kept_day()]
        if not window:
            return []
        recheck = window[-config.recheck_hours:] if config.recheck_hours else []
        trusted_after = self._trusted_after()
        jobs = []
        for tenant in self.pipeline.tenants():
            thanos, sink = self.pipeline.thanos, self.pipeline.sink
            presence = hourly_counts(thanos, config.tenant_label, tenant, PRESENCE_METRICS, window[0], window[-1])
            recheck_counts = (hourly_counts(thanos, config.tenant_label, tenant, SENTINEL_METRICS, recheck[0],
                                            recheck[-1]) if recheck else {})
            states = sink.hour_states(tenant, window[0], window[-1])
            complete = [hour for hour, state in states.items() if state.current_coverage is not None]
            if complete:
                telemetry.NEWEST_COMPLETE_LAG.labels(tenant).set(now - (max(complete) + HOUR))
            telemetry.REFUSED_HOURS.labels(tenant).set(sum(s.last_status == RunStatus.REFUSED for s in states.values()))
            jobs += _as_jobs(tenant, plan(window, presence, recheck_counts, states, trusted_after), int(now))
        # every tenant's newest hour first: a long catch-up of one tenant waits behind the others' scheduled hours
        return sorted(jobs, key=lambda job: job.reason != "scheduled")

    def tick(self, channel: Any = None) -> list[Job]:
        """Enqueue every due tenant-hour; returns the jobs. Failures are logged, the next tick tries again."""
        started = time.perf_counter()
        try:
            jobs = self.due_jobs()
            for job in jobs:
                self.broker.publish(job, channel)
                telemetry.JOBS_ENQUEUED.labels(job.reason).inc()
                self.pipeline.sink.record(*(RunRecord.queued(job.cloud_account_id, hour, job.reason)
                                            for hour in job.hour_starts))
        except WorkerError as exc:
            log.error("scheduler tick failed", error=str(exc))
            return []
        self.clean_up()
        self.keep_days()
        self.reconcile_with_bill()
        log.info("scheduler tick", enqueued=len(jobs), seconds=round(time.perf_counter() - started, 3),
                 reasons=dict(Counter(j.reason for j in jobs)))
        return jobs

    def clean_up(self) -> None:
        """Remove the rows of runs superseded, failed or abandoned since the last cleanup; a failure is logged and
        the next tick covers the same hours."""
        since = self.last_cleanup - CLEANUP_OVERLAP if self.last_cleanup else None
        try:
            collected = self.pipeline.sink.collect_garbage(since)
        except WorkerError as exc:
            log.error("cleanup of obsolete runs failed", error=str(exc))
            return
        self.last_cleanup = collected.began_at
        telemetry.RUNS_COLLECTED.inc(collected.runs)

    def first_kept_day(self) -> int:
        """The first UTC day whose hours ``KCW_RETENTION_DAYS`` keeps: today and that many days before it (0: every
        day)."""
        if not self.config.retention_days:
            return 0
        return day_of(self.clock()) - self.config.retention_days * DAY

    def keep_days(self) -> None:
        """Rebuild the stale days of the hours committed since the last complete sweep (every day, the first time;
        at most ``days.BUILDS_PER_TICK``: an unfinished sweep starts from the same point next tick), then expire the
        hours before the first kept day. A failure is logged, and the next tick does the same work."""
        sink = self.pipeline.sink
        try:
            began_at = sink.server_now()
            since = self.last_sweep - CLEANUP_OVERLAP if self.last_sweep else None
            swept = days.sweep(sink.client, since, day_of(self.clock()))
            if swept.built + swept.failed < days.BUILDS_PER_TICK:
                self.last_sweep = began_at
            if self.config.retention_days:
                cleanup.expire_hours(sink.client, sink.cluster, self.first_kept_day())
        except WorkerError as exc:
            log.error("keeping the daily tier failed", error=str(exc))

    def reconcile_with_bill(self) -> None:
        """Reconcile the tenant-days the bill covers, closed ``KCW_BILL_LAG_HOURS`` ago, never reconciled or whose
        runs or bill changed since (``store/reconcile.py``). A failure is logged, and the next tick does the same."""
        from ..store import reconcile

        bill = reconcile.BillSettings(self.config.bill_table, self.config.bill_cost)
        try:
            done = reconcile.reconcile_due(self.pipeline.sink.client, bill, self.config.bill_lag_hours, self.clock())
        except WorkerError as exc:
            log.error("reconciling with the bill failed", error=str(exc))
            return
        for day in done:
            telemetry.RECONCILED_DAYS.labels("reconciled" if day.changed else "unchanged").inc()
            telemetry.RECONCILED_SHARE.labels(day.tenant).set(day.modelled_cost / day.list_cost if day.list_cost
                                                              else 0.0)


def hourly_trigger(minute: int):
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger(minute=minute, timezone=dt.timezone.utc)


def run_blocking(scheduler: Scheduler, minute: int) -> None:
    """``schedule``: a tick now, then every hour at ``minute``, until SIGTERM/SIGINT."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    aps = BlockingScheduler(timezone=dt.timezone.utc)
    aps.add_job(scheduler.tick, hourly_trigger(minute), id="tick", max_instances=1, coalesce=True,
                misfire_grace_time=3000, next_run_time=dt.datetime.now(dt.timezone.utc))
    signal.signal(signal.SIGTERM, lambda *_: aps.shutdown(wait=False))
    try:
        aps.start()
    except (KeyboardInterrupt, SystemExit):
        pass


def tick_flag(minute: int) -> tuple[threading.Event, Any]:
    """For ``run``: APScheduler only raises a flag; the consumer loop runs the tick itself, so the embedded
    ClickHouse is only ever used from one thread."""
    from apscheduler.schedulers.background import BackgroundScheduler

    flag = threading.Event()
    flag.set()  # a tick at start-up: catch up at once
    aps = BackgroundScheduler(timezone=dt.timezone.utc)
    aps.add_job(flag.set, hourly_trigger(minute), id="tick", max_instances=1, coalesce=True, misfire_grace_time=3000)
    aps.start()
    return flag, aps


def _as_jobs(tenant: str, due: list[tuple[int, str]], requested_at: int) -> list[Job]:
    """The due hours of a tenant as jobs, by hour: consecutive catch-up hours as one range (``next_batch`` without a
    limit: a catch-up after an outage becomes one job, which the consumer splits into batches as its turn comes),
    the others an hour each."""
    catch_up = sorted(hour for hour, reason in due if reason == "catch-up")
    jobs = [Job(tenant, hour, hour + HOUR, reason, requested_at) for hour, reason in due if reason != "catch-up"]
    while catch_up:
        hours = next_batch(catch_up, None)
        del catch_up[:len(hours)]
        jobs.append(Job(tenant, hours[0], hours[-1] + HOUR, "catch-up", requested_at))
    return sorted(jobs, key=lambda job: job.start)
