"""The hourly tick: find the due tenant-hours (``planning.plan``) and enqueue them as jobs, then remove the rows of
the runs that can no longer become current (``ClickHouseSink.collect_garbage``: one batch per tick).

APScheduler 3.11 drives it: a cron trigger at ``KCW_SCHEDULE_MINUTE`` past every hour, ``max_instances=1`` and
``coalesce=True`` (a tick that overran, or ticks missed while the process slept, run once). A second scheduler
by mistake only enqueues duplicates, and processing a tenant-hour twice replaces it exactly.

The ledger's records are stamped by the ClickHouse server's clock, so their ages (which pending records to trust,
which hours changed since the last cleanup) are measured against the server's time, never this process's clock:
replicas and CronJobs on several nodes need not agree on the time. ``clock`` only picks the due hours.
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
from ..hours import HOUR
from ..model.series import NODE_CPU_HOURLY_COST
from ..pipeline import next_batch
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
        window = catchup_window(now, config.lag_minutes, config.max_catchup_hours)
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
