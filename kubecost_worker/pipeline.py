"""One tenant-hour, end to end: source -> model -> sink. Everything else (CLI, scheduler, reruns) calls this."""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from dataclasses import dataclass

import structlog

from . import telemetry
from .config import Config, is_safe_tenant_id
from .errors import TerminalError, UnexpectedError, WorkerError
from .model import compute_hour
from .model.checks import describe, implausible
from .runs import HOUR, SENTINEL_METRICS, RunRecord, RunStatus, refusal, utc
from .sink.clickhouse import ClickHouseSink
from .source.extract import discover_tenants, fetch_hour
from .source.thanos import ThanosClient

log = structlog.get_logger(__name__)


@dataclass
class Pipeline:
    config: Config
    thanos: ThanosClient
    sink: ClickHouseSink

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
        found markedly less data than the hour's current run, ``runs.refusal``; ``force`` replaces it anyway).
        Raises on failure after recording it."""
        if hour % HOUR:
            raise TerminalError(f"hour {hour} is not on an hour boundary")
        run = RunRecord.start(tenant, hour, reason)
        bound = log.bind(tenant=tenant, hour=utc(hour).isoformat(), run_id=str(run.run_id))
        self.sink.record(run)
        thanos = self.thanos.counting()  # what this hour asks of Thanos, for its ledger record
        try:
            with telemetry.RUN_SECONDS.time(), cyclic_gc_paused():
                try:
                    done = self._compute_and_write(run, thanos, bound, force)
                except WorkerError:
                    raise
                except Exception as exc:  # a bug, or an answer no check foresaw: the hour fails, the rest go on
                    raise UnexpectedError(f"unexpected {type(exc).__name__}: {exc}") from exc
        except WorkerError as exc:
            kind = ("unexpected" if isinstance(exc, UnexpectedError) else "terminal" if isinstance(exc, TerminalError)
                    else "transient")
            bound.error("tenant-hour failed", error=str(exc), kind=kind, exc_info=kind == "unexpected")
            telemetry.TENANT_HOURS.labels("failed").inc()
            telemetry.TENANT_HOUR_FAILURES.labels(kind).inc()
            self._record_failure(run.measured(thanos.load.queries, thanos.load.bytes, thanos.load.samples), exc)
            raise
        if done.status == RunStatus.REFUSED:
            telemetry.TENANT_HOURS.labels("refused").inc()
            bound.warning("tenant-hour refused", error=done.error, rows=done.rows_written,
                          sentinel_samples=done.sentinel_samples)
            return done
        telemetry.TENANT_HOURS.labels("succeeded").inc()
        telemetry.ROWS_WRITTEN.inc(done.rows_written)
        telemetry.UNPRICED_NODES.labels(tenant).set(len(done.unpriced_nodes))
        bound.info("tenant-hour done", rows=done.rows_written, total_cost=round(done.total_cost, 6),
                   samples=done.samples_seen, thanos_queries=done.thanos_queries, thanos_bytes=done.thanos_bytes)
        return done

    def _compute_and_write(self, run: RunRecord, thanos: ThanosClient, bound, force: bool) -> RunRecord:
        hour_input = fetch_hour(thanos, self.config.tenant_label, run.cloud_account_id, run.hour, run.hour + HOUR,
                                self.config.step_seconds)
        run = run.measured(thanos.load.queries, thanos.load.bytes, thanos.load.samples)
        result = compute_hour(hour_input, default_prices=self.config.default_prices)
        sentinel_samples = hour_input.sample_count(SENTINEL_METRICS)
        problems = implausible(result)
        if problems:
            raise TerminalError(f"implausible numbers, nothing stored: {describe(problems)}")
        if result.unpriced_nodes:
            bound.warning("nodes without price series: their pods are priced by the configured defaults, else at 0",
                          nodes=result.unpriced_nodes[:10], count=len(result.unpriced_nodes),
                          defaults=sorted(self.config.default_prices or {}))
        if not force:
            current = self.sink.current_run(run.cloud_account_id, run.hour)
            why = refusal(current, sentinel_samples, len(result.rows), self.config.refuse_below)
            if why:
                refused = run.refused(why, len(result.rows), result.total_cost, result.samples_seen,
                                      sentinel_samples, result.unpriced_nodes)
                self.sink.record(refused)
                return refused
        return self.sink.write_hour(run, result, sentinel_samples)

    def _record_failure(self, run: RunRecord, exc: Exception) -> None:
        failed = run.failed(f"{type(exc).__name__}: {exc}")
        try:
            self.sink.record(failed)
        except WorkerError as record_exc:  # ClickHouse itself is down: the run stays 'running', never visible
            log.warning("could not record the failure", run_id=str(run.run_id), error=str(record_exc))


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
    """Run every tenant-hour (``kubecost-worker backfill``), hour by hour; a failed tenant-hour is recorded and the
    others go on."""
    from tqdm import tqdm

    summary = HoursSummary(tenant_count=len(tenants), hour_count=len(hour_starts))
    started = time.perf_counter()
    jobs = [(tenant, hour) for hour in hour_starts for tenant in tenants]
    for tenant, hour in tqdm(jobs, disable=not progress, unit="tenant-hour", file=sys.stderr):
        try:
            record = pipeline.run_hour(tenant, hour, reason="backfill", force=force)
        except WorkerError:
            summary.failed += 1
            continue
        if record.status == RunStatus.REFUSED:
            summary.refused += 1
            continue
        summary.done += 1
        summary.rows += record.rows_written
        summary.total_cost += record.total_cost
    summary.seconds = time.perf_counter() - started
    return summary
