"""One tenant-hour, end to end: source -> model -> sink. Everything else (CLI, scheduler, reruns) calls this."""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import structlog

from . import telemetry
from .config import Config, is_safe_tenant_id
from .errors import TerminalError, UnexpectedError, WorkerError, kind_of
from .model import compute_hour
from .model.series import HourInput
from .model.checks import describe, implausible
from .hours import HOUR, is_hour_start, utc
from .store.ledger import SENTINEL_METRICS, RunRecord, RunStatus, refusal
from .store.clickhouse import ClickHouseSink
from .source.extract import discover_tenants, fetch_hour, fetch_hours
from .source.thanos import ThanosClient, ThanosLoad

log = structlog.get_logger(__name__)


@dataclass
class Pipeline:
    config: Config
    thanos: ThanosClient
    sink: ClickHouseSink
    # the series of each tenant's latest hour fetched: what a batch of its hours is sized by
    series_seen: dict[str, int] = field(default_factory=dict)

    def batch_size(self, tenant: str) -> int:
        """How many consecutive hours of ``tenant`` to fetch together: ``KCW_BATCH_HOURS``, fewer where the tenant's
        last hour had so many series that the batch would pass ``KCW_BATCH_SERIES_HOURS``; a tenant not seen yet
        has its first hour fetched alone (which tells its size)."""
        return batch_size(self.config, self.series_seen.get(tenant))

    def tenants(self) -> list[str]:
        """The configured tenants, else those Thanos knows (ids outside the safe alphabet are skipped)."""
        if self.config.tenants:
            return list(self.config.tenants)
        found = discover_tenants(self.thanos, self.config.tenant_label)
        unsafe = [t for t in found if not is_safe_tenant_id(t)]
        if unsafe:
            log.warning("skipping tenant ids outside the safe alphabet", tenants=unsafe[:10], count=len(unsafe))
        return [t for t in found if is_safe_tenant_id(t)]

    def run_hour(self, tenant: str, hour: int, reason: str = "backfill", force: bool = False) -> RunRecord:
        """Process one tenant-hour; the ledger records the outcome, which is returned: succeeded, or refused (the run
        found markedly less data than the hour's current run, ``ledger.refusal``; ``force`` replaces it anyway).
        Raises on failure after recording it."""
        if not is_hour_start(hour):
            raise TerminalError(f"hour {hour} is not on an hour boundary")
        run = RunRecord.start(tenant, hour, reason)
        self.sink.record(run)
        thanos = self.thanos.counting()  # what this hour asks of Thanos, for its ledger record

        def fetched() -> HourInput:
            return fetch_hour(thanos, self.config.tenant_label, tenant, hour, hour + HOUR, self.config.step_seconds)

        return self._run(run, fetched, lambda: (thanos.load.queries, thanos.load.bytes, thanos.load.samples), force)

    def run_batch(self, tenant: str, hours: list[int], reason: str = "backfill",
                  force: bool = False) -> list[RunRecord | WorkerError]:
        """Consecutive hours of one tenant, in batches whose summaries are fetched together
        (``source.extract.fetch_hours``, sized by ``batch_size``): each hour is still a run of its own in the ledger
        and commits on its own, and a failure fails that hour only. Returns each hour's record, or the error it
        failed with (recorded). Each hour's ledger record holds its share of its batch's requests to Thanos (the
        batch's, divided evenly)."""
        if not all(map(is_hour_start, hours)):
            raise TerminalError("hours not on an hour boundary")
        if any(b - a != HOUR for a, b in zip(hours, hours[1:])):
            raise TerminalError("a batch takes consecutive hours")
        outcomes: list[RunRecord | WorkerError] = []
        while len(outcomes) < len(hours):
            size = self.batch_size(tenant)
            outcomes += self._batch(tenant, hours[len(outcomes):len(outcomes) + size], reason, force)
        return outcomes

    def _batch(self, tenant: str, hours: list[int], reason: str, force: bool) -> list[RunRecord | WorkerError]:
        if len(hours) == 1:
            try:
                return [self.run_hour(tenant, hours[0], reason, force)]
            except WorkerError as exc:
                return [exc]
        runs = [RunRecord.start(tenant, hour, reason) for hour in hours]
        self.sink.record(*runs)
        thanos = self.thanos.counting()
        outcomes: list[RunRecord | WorkerError] = []
        inputs = fetch_hours(thanos, self.config.tenant_label, tenant, hours, self.config.step_seconds)
        broken: UnexpectedError | None = None
        for run in runs:
            hour_input, load = broken, ThanosLoad()
            if broken is None:
                try:
                    with cyclic_gc_paused():
                        hour_input, load = next(inputs)
                except Exception as exc:  # a bug: this hour and the rest of the batch fail with it, recorded
                    hour_input = broken = UnexpectedError(f"unexpected {type(exc).__name__}: {exc}")

            def fetched(hour_input=hour_input) -> HourInput:
                if isinstance(hour_input, Exception):
                    raise hour_input
                return hour_input

            try:
                outcomes.append(self._run(run, fetched, lambda load=load: (load.queries, load.bytes, load.samples),
                                          force))
            except WorkerError as exc:
                outcomes.append(exc)
            del fetched, hour_input  # not held while the next hour's input is made
        return outcomes

    def _run(self, run: RunRecord, fetched: Callable[[], HourInput], load: Callable[[], tuple[int, int, int]],
             force: bool) -> RunRecord:
        """The rest of a run once it is in the ledger: its input, priced, checked, written and committed; the
        outcome recorded with what the run asked of Thanos (``load``)."""
        bound = log.bind(tenant=run.cloud_account_id, hour=utc(run.hour).isoformat(), run_id=str(run.run_id))
        try:
            with telemetry.RUN_SECONDS.time(), cyclic_gc_paused():
                try:
                    hour_input = fetched()
                    self.series_seen[run.cloud_account_id] = sum(len(group) for group in hour_input.series.values())
                    done = self._price_and_write(run.measured(*load()), hour_input, bound, force)
                except WorkerError:
                    raise
                except Exception as exc:  # a bug, or an answer no check foresaw: the hour fails, the rest go on
                    raise UnexpectedError(f"unexpected {type(exc).__name__}: {exc}") from exc
        except WorkerError as exc:
            kind = kind_of(exc)
            bound.error("tenant-hour failed", error=str(exc), kind=kind, exc_info=kind == "unexpected")
            telemetry.TENANT_HOURS.labels("failed").inc()
            telemetry.TENANT_HOUR_FAILURES.labels(kind).inc()
            self._record_failure(run.measured(*load()), exc)
            raise
        if done.status == RunStatus.REFUSED:
            telemetry.TENANT_HOURS.labels("refused").inc()
            bound.warning("tenant-hour refused", error=done.error, rows=done.rows_written,
                          coverage=done.coverage)
            return done
        telemetry.TENANT_HOURS.labels("succeeded").inc()
        telemetry.ROWS_WRITTEN.inc(done.rows_written)
        telemetry.UNPRICED_NODES.labels(run.cloud_account_id).set(len(done.unpriced_nodes))
        bound.info("tenant-hour done", rows=done.rows_written, total_cost=round(done.total_cost, 6),
                   samples=done.samples_seen, thanos_queries=done.thanos_queries, thanos_bytes=done.thanos_bytes)
        return done

    def _price_and_write(self, run: RunRecord, hour_input: HourInput, bound, force: bool) -> RunRecord:
        result = compute_hour(hour_input, default_prices=self.config.default_prices)
        coverage = hour_input.sample_count(SENTINEL_METRICS)
        problems = implausible(result)
        if problems:
            raise TerminalError(f"implausible numbers, nothing stored: {describe(problems)}")
        if result.unpriced_nodes:
            bound.warning("nodes without price series: their pods are priced by the configured defaults, else at 0",
                          nodes=result.unpriced_nodes[:10], count=len(result.unpriced_nodes),
                          defaults=sorted(self.config.default_prices or {}))
        if not force:
            current = self.sink.current_run(run.cloud_account_id, run.hour)
            why = refusal(current, coverage, len(result.rows), self.config.refuse_below)
            if why:
                refused = run.refused(why, len(result.rows), result.total_cost, result.samples_seen,
                                      coverage, result.unpriced_nodes)
                self.sink.record(refused)
                return refused
        return self.sink.write_hour(run, result, coverage)

    def _record_failure(self, run: RunRecord, exc: Exception) -> None:
        failed = run.failed(f"{type(exc).__name__}: {exc}")
        try:
            self.sink.record(failed)
        except WorkerError as record_exc:  # ClickHouse itself is down: the run stays 'running', never visible
            log.warning("could not record the failure", run_id=str(run.run_id), error=str(record_exc))


def batch_size(config: Config, series: int | None) -> int:
    """Hours a batch may take when the tenant's last hour had ``series`` series (None: not seen yet, one hour)."""
    if series is None:
        return 1
    return max(1, min(config.batch_hours, config.batch_series_hours // max(series, 1)))


@contextlib.contextmanager
def cyclic_gc_paused():
    """A tenant-hour allocates up to millions of objects (parsed JSON, series, rows) that live until it is written;
    the cyclic collector would walk them again and again (a third of the fetch at 2,000 pods) and find nothing to
    free, since reference counting frees them. Paused for the hour; cycles made meanwhile are collected later."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class HoursSummary:
    """What ``run_hours`` did: tenant-hours done, failed and refused, rows and cost written, seconds taken."""

    tenant_count: int
    hour_count: int
    done: int = 0
    failed: int = 0
    refused: int = 0
    rows: int = 0
    total_cost: float = 0.0
    seconds: float = 0.0

    def line(self) -> str:
        jobs = self.done + self.failed
        line = (f"backfill: {self.done}/{jobs + self.refused} tenant-hours ({self.tenant_count} tenants x "
                f"{self.hour_count} hours), {self.rows} rows, total cost {self.total_cost:.4f}, {self.seconds:.1f} s, "
                f"{self.failed} failed")
        return line + (f", {self.refused} refused (less data than stored; --force replaces)" if self.refused else "")


def run_hours(pipeline: Pipeline, tenants: list[str], hour_starts: list[int], progress: bool = False,
              force: bool = False) -> HoursSummary:
    """Run every tenant-hour (``kubecost-worker backfill``): in rounds, each tenant its next batch of consecutive
    hours (``Pipeline.batch_size``); a failed tenant-hour is recorded and the others go on."""
    from tqdm import tqdm

    summary = HoursSummary(tenant_count=len(tenants), hour_count=len(hour_starts))
    started = time.perf_counter()
    pending = {tenant: sorted(hour_starts) for tenant in tenants}
    with tqdm(total=len(tenants) * len(hour_starts), disable=not progress, unit="tenant-hour",
              file=sys.stderr) as bar:
        while any(pending.values()):
            for tenant in tenants:
                hours = pending[tenant]
                batch = hours[:1]
                while hours[len(batch):] and len(batch) < pipeline.batch_size(tenant) \
                        and hours[len(batch)] == batch[-1] + HOUR:
                    batch.append(hours[len(batch)])
                del hours[:len(batch)]
                for outcome in (pipeline._batch(tenant, batch, "backfill", force) if batch else ()):
                    bar.update(1)
                    if isinstance(outcome, WorkerError):
                        summary.failed += 1
                    elif outcome.status == RunStatus.REFUSED:
                        summary.refused += 1
                    else:
                        summary.done += 1
                        summary.rows += outcome.rows_written
                        summary.total_cost += outcome.total_cost
    summary.seconds = time.perf_counter() - started
    return summary
