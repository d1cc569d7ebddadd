"""The tenant-hour path: source -> model -> sink, batch by batch. Everything else (CLI, consumer, scheduler) calls
this; ``next_batch`` is where every caller's batching is decided.

A batch is consecutive hours of one tenant whose summaries are fetched together (``source.extract.fetch_hours``);
a single hour is a batch of one. The hours of a batch are priced one at a time and written together (one insert per
table, one ledger insert); each is still a run of its own in the ledger, committed by its own record, and ends in
an ``HourOutcome``: succeeded, refused, or failed with its kind. An error is raised once where it happens (the
source, the model, the sink) and caught once, in ``Pipeline._price_hour`` or ``Pipeline._write``, where the hour's
failure is recorded; callers read outcomes, never exceptions, except where no hour could begin (ClickHouse refusing
the batch's first ledger records).
"""

from __future__ import annotations

import contextlib
import gc
import math
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import structlog

from . import telemetry
from .config import Config, is_safe_tenant_id
from .errors import TerminalError, WorkerError, as_worker_error, kind_of
from .hours import HOUR, day_of, utc
from .model import compute_hour
from .model.checks import describe, implausible
from .model.rows import HourResult
from .source.extract import Census, HourFetch, census, discover_tenants, fetch_hours, read_ahead, read_now
from .source.thanos import ThanosClient, ThanosLoad
from .store.clickhouse import ClickHouseSink
from .store.ledger import SENTINEL_METRICS, CurrentRun, RunRecord, RunStatus, refusal

log = structlog.get_logger(__name__)


# -- batching ----------------------------------------------------------------------------------------------------

def next_batch(hours: Sequence[int], most: int | None) -> list[int]:
    """The batch sorted ``hours`` begin with: their first hour and the consecutive hours after it, at most ``most``
    in all (None: no limit). A run of consecutive hours longer than ``most`` is cut in as few batches as ``most``
    allows, of even sizes (24 hours at most 7: 6, 6, 6, 6, not 7, 7, 7, 3: a batch's shared queries cost about as
    much for 3 hours as for 7). The one batching rule: backfill and the consumer run hours in these batches, the
    consumer splits a long job into them, the scheduler makes its catch-up ranges of them."""
    run = min(len(hours), 1)
    while run < len(hours) and hours[run] == hours[run - 1] + HOUR:
        run += 1
    if most is not None and run > most:
        batches = -(-run // most)
        run = -(-run // batches)
    return list(hours[:run])


# The fewest hours a batch is cut to so that the next is fetched while it runs: a batch's shared queries cost
# Prometheus nearly as much for a few hours as for many (its series are found once), so short batches pay more
# than the overlap gains. 24-hour backfills on 2 cores shared with Prometheus: a 1,000-pod tenant's batches of 6
# fetched ahead took 8-10 % less wall than batches of 14 alone; a 2,000-pod tenant's batches of 3 fetched ahead
# took 10 % more wall and 40 % more Prometheus CPU than batches of 6 alone (docs/benchmarks.md).
AHEAD_HOURS = 6


def batch_size(config: Config, series: int | None) -> int:
    """Hours a batch may take when the tenant's last hour had ``series`` series (or its census counts that many
    summarised series: ``Pipeline._census_ahead``): ``KCW_BATCH_HOURS``, fewer where the batch would pass half of
    ``KCW_BATCH_SERIES_HOURS``, so that the next batch is fetched while it runs (``Pipeline._size_ahead``); where
    half the budget holds fewer than ``AHEAD_HOURS``, the whole budget's hours, fetched alone. None (a tenant not
    seen yet, its census not asked): its first hour goes alone, which tells its size."""
    if series is None:
        return 1
    hours = config.batch_series_hours // max(series, 1)
    half = hours // 2
    return max(1, min(config.batch_hours, half if half >= AHEAD_HOURS else hours))


# Rows of a batch's priced hours held for one write: past this many the hours held are written first, so that a
# large tenant's batch holds about this many rows at most (a 2,000-pod hour has about 2,900).
WRITE_ROWS = 20_000

# Batches run between two collections of the cyclic collector's young generations (``Pipeline.in_rounds``, which
# pauses it): a batch leaves a few hundred objects in cycles (about 200-400 at 200 pods), and with the next batch
# fetched while one runs the collector is never resumed between them; each collection walks the young objects
# alive, the next batch's answers among them.
COLLECT_EVERY = 8


# -- one tenant-hour's end ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HourOutcome:
    """How one tenant-hour ended: its last ledger record (succeeded, refused or failed) and, when it failed, the
    failure's kind (``errors.kind_of``: ``unexpected``, ``transient`` or ``terminal``), which decides what a job
    does with it, and its message."""

    record: RunRecord
    kind: str | None = None
    error: str = ""

    @property
    def status(self) -> RunStatus:
        return self.record.status

    @property
    def hour(self) -> int:
        return self.record.hour


# -- the runner --------------------------------------------------------------------------------------------------

@dataclass
class Pipeline:
    config: Config
    thanos: ThanosClient
    sink: ClickHouseSink
    # the series of each tenant's latest hour fetched: what a batch of its hours is sized by
    series_seen: dict[str, int] = field(default_factory=dict)

    def batch_size(self, tenant: str) -> int:
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

    def batches(self, tenant: str, hours: Sequence[int], reason: str = "backfill",
                force: bool = False) -> Iterator[list[HourOutcome]]:
        """Run ``hours`` of ``tenant`` batch by batch (``in_rounds`` with one tenant), yielding each batch's outcomes
        as it ends."""
        for _, outcomes in self.in_rounds([tenant], hours, reason, force):
            yield outcomes

    def in_rounds(self, tenants: Sequence[str], hours: Sequence[int], reason: str = "backfill",
                  force: bool = False) -> Iterator[tuple[str, list[HourOutcome]]]:
        """Run ``hours`` of every tenant batch by batch, the tenants in rounds (each its next batch in turn, so that
        they advance together), yielding each batch's tenant and outcomes as it ends.

        Each batch is sized when it is fetched (``next_batch`` by ``batch_size``): by the tenant's last hour read,
        else by the census of its first hour, asked ahead (else the first hour goes alone and sizes the rest). While
        a batch is priced and written, the next one in turn is fetched (its shared queries, its first hour read),
        where both fit the series-hours budget (``_size_ahead``): Thanos answers while this process computes. A
        batch's hours are recorded ``running`` when its turn comes, then run one at a time. ``force`` replaces hours
        even where a run finds markedly less data than stored (``ledger.refusal``). The daily tier's days of the
        hours committed are built again once no hour of theirs is left to run (a day of a backfill once, not after
        each of its batches). Raises only where ClickHouse refuses a batch's first records: no hour of it began."""
        turns = deque(_TenantHours(tenant, sorted(hours), len(hours) > 1 and tenant not in self.series_seen)
                      for tenant in tenants if hours)
        finished = 0
        with cyclic_gc_paused(), ThreadPoolExecutor(1, thread_name_prefix="fetch-ahead") as fetcher:
            upcoming: Future | None = None
            while turns or upcoming is not None:
                current = upcoming.result() if upcoming is not None else self._fetch(turns.popleft())
                if current.tenant_hours.pending:
                    turns.append(current.tenant_hours)
                size = self._size_ahead(current, turns[0]) if turns else None
                upcoming = fetcher.submit(self._fetch, turns.popleft(), size, True) if size else None
                outcomes = self._finish(current, reason, force)
                finished += 1
                if finished % COLLECT_EVERY == 0:
                    gc.collect(1)
                yield current.tenant_hours.tenant, outcomes

    def _size_ahead(self, current: "_Fetched", following: "_TenantHours") -> int | None:
        """The hours of ``following``'s next batch where it may be fetched while ``current`` runs: both batches
        within ``KCW_BATCH_SERIES_HOURS`` (hours x the tenant's series, ``batch_size``'s measure), the next at its
        full size. None where they do not fit, or where its tenant is not seen yet (its census tells its size)."""
        held, series = self.series_seen.get(current.tenant_hours.tenant), self.series_seen.get(following.tenant)
        if held is None or series is None:
            return None
        size = self.batch_size(following.tenant)
        return size if held * len(current.hours) + series * size <= self.config.batch_series_hours else None

    def _fetch(self, tenant_hours: "_TenantHours", size: int | None = None, ahead: bool = False) -> "_Fetched":
        """A tenant's next batch (``size`` hours, else as ``batch_size`` says), its shared queries asked, and its
        first hour read where it is fetched ``ahead`` (else that hour is read in its turn, after the batch's ledger
        records and lookups: reading it before them adds their memory in ClickHouse to the hour's, 30 MB at 10,000
        pods); or the error that kept any of its queries from being asked."""
        client = self.thanos.counting()  # the batch's shared requests, the census asked to size it among them
        tenant, pending = tenant_hours.tenant, tenant_hours.pending
        sized_by = self._census_ahead(client, tenant, pending) if tenant_hours.sized_by_census else None
        tenant_hours.sized_by_census = False
        batch = next_batch(pending, size or self.batch_size(tenant))
        del pending[:len(batch)]
        try:
            fetches = fetch_hours(client, self.config.tenant_label, tenant, batch, self.config.step_seconds, sized_by)
        except Exception as exc:  # not one query could be asked: every hour of the batch fails with it
            return _Fetched(tenant_hours, batch, [], exc)
        return _Fetched(tenant_hours, batch, [read_now(fetches[0]), *fetches[1:]] if ahead else fetches)

    def _finish(self, fetched: "_Fetched", reason: str, force: bool) -> list[HourOutcome]:
        """A fetched batch's turn: its hours recorded ``running``, then run and written (or each failed with the
        error that kept its queries from being asked); then the days its tenant has no hour left to run in built
        again."""
        tenant_hours = fetched.tenant_hours
        runs = [RunRecord.start(tenant_hours.tenant, hour, reason) for hour in fetched.hours]
        self.sink.record(*runs)
        if fetched.error is not None:
            outcomes = [self._failed(run, as_worker_error(fetched.error)) for run in runs]
        else:
            outcomes = self._run_batch(runs, fetched.fetches, force)
            fetched.fetches.clear()
        tenant_hours.committed += [o.record for o in outcomes if o.status == RunStatus.SUCCEEDED]
        del tenant_hours.unfinished[:len(fetched.hours)]
        done_before = day_of(tenant_hours.unfinished[0]) if tenant_hours.unfinished else math.inf
        ready = [r for r in tenant_hours.committed if day_of(r.hour) < done_before]
        if ready:
            self.sink.rebuild_days(ready)
            tenant_hours.committed = [r for r in tenant_hours.committed if day_of(r.hour) >= done_before]
        return outcomes

    def _census_ahead(self, client: ThanosClient, tenant: str, pending: Sequence[int]) -> Census | None:
        """The census of a tenant's first hour (one query of series counts): what sizes its first batch, which takes
        it for that hour and asks the census of its other hours with its other queries. One hour, not every hour the
        batch may take: the census reads each series' samples, and a 10,000-pod tenant's batch is one hour. None
        where it could not be asked: the first hour then goes alone, and tells the size."""
        try:
            found = census(client, self.config.tenant_label, tenant, pending[:1], self.config.step_seconds)
            self.series_seen[tenant] = found.series()  # a count that is no count is a bad answer, as in a batch
        except WorkerError:
            return None
        return found

    def run_hour(self, tenant: str, hour: int, reason: str = "backfill", force: bool = False) -> HourOutcome:
        """One tenant-hour, as a batch of one."""
        (outcome,), = self.batches(tenant, [hour], reason, force)
        return outcome

    def _run_batch(self, runs: list[RunRecord], fetches: list[HourFetch], force: bool) -> list[HourOutcome]:
        """The hours of a batch, priced one at a time (the next ones read meanwhile: ``read_ahead``) and written
        together (``ClickHouseSink.write_hours``: one insert per table and one ledger insert for the hours priced), in
        writes of at most ``WRITE_ROWS`` rows; the current runs they may replace are looked up once."""
        try:
            current = {} if force else self.sink.current_runs(runs[0].cloud_account_id, [r.hour for r in runs])
        except Exception as exc:  # ClickHouse away: no hour could be checked against what is stored
            return [self._failed(_measured(run, fetch.load()), as_worker_error(exc)) for run, fetch in
                    zip(runs, fetches)]
        outcomes: dict[int, HourOutcome] = {}
        priced: list[_Priced] = []
        for run, fetch in zip(runs, read_ahead(fetches)):
            hour = self._price_hour(run, fetch, current.get(run.hour), force)
            if isinstance(hour, HourOutcome):
                outcomes[run.hour] = hour
                continue
            priced.append(hour)
            if sum(len(p.result.rows) for p in priced) >= WRITE_ROWS:
                outcomes.update(self._write(priced))
                priced = []
        outcomes.update(self._write(priced))
        return [outcomes[run.hour] for run in runs]

    def _price_hour(self, run: RunRecord, fetch: HourFetch, current: CurrentRun | None,
                    force: bool) -> "HourOutcome | _Priced":
        """One hour of a batch, recorded ``running``: its input read, priced and checked; refused, or priced and
        waiting for its batch's write. Any failure fails this hour only, recorded with what the hour asked of
        Thanos."""
        bound, started = _logger(run), time.perf_counter()
        try:
            hour_input = fetch.read()
            self.series_seen[run.cloud_account_id] = sum(len(group) for group in hour_input.series.values())
            run = _measured(run, fetch.load())
            result = compute_hour(hour_input, default_prices=self.config.default_prices)
            coverage = hour_input.sample_count(SENTINEL_METRICS)
            problems = implausible(result)
            if problems:
                raise TerminalError(f"implausible numbers, nothing stored: {describe(problems)}")
            if result.unpriced_nodes:
                bound.warning("nodes without price series: their pods are priced by the configured defaults, "
                              "else at 0", nodes=result.unpriced_nodes[:10], count=len(result.unpriced_nodes),
                              defaults=sorted(self.config.default_prices or {}))
            why = None if force else refusal(current, coverage, len(result.rows), self.config.refuse_below)
            if not why:
                return _Priced(run, result, coverage, bound, time.perf_counter() - started)
            ended = run.refused(why, len(result.rows), result.total_cost, result.samples_seen, coverage,
                                result.unpriced_nodes)
            self.sink.record(ended)
            outcome = _reported(ended, bound)
        except Exception as exc:  # the source, the model or the sink: this hour fails, the others go on
            outcome = self._failed(_measured(run, fetch.load()), as_worker_error(exc), bound)
        telemetry.RUN_SECONDS.observe(time.perf_counter() - started)
        return outcome

    def _write(self, priced: list["_Priced"]) -> dict[int, HourOutcome]:
        """The priced hours written and committed together; where the write fails, each of them fails with it.
        Each hour's run time is its pricing and its share of the write."""
        if not priced:
            return {}
        started = time.perf_counter()
        try:
            ended = self.sink.write_hours([(p.run, p.result, p.coverage) for p in priced])
        except Exception as exc:
            outcomes = {p.run.hour: self._failed(p.run, as_worker_error(exc), p.bound) for p in priced}
        else:
            outcomes = {p.run.hour: _reported(end, p.bound) if isinstance(end, RunRecord)
                        else self._failed(p.run, end, p.bound) for p, end in zip(priced, ended)}
        share = (time.perf_counter() - started) / len(priced)
        for hour in priced:
            telemetry.RUN_SECONDS.observe(hour.seconds + share)
        return outcomes

    def _failed(self, run: RunRecord, error: WorkerError, bound=None) -> HourOutcome:
        """Record the hour's failure (called while its exception is handled: an unexpected one is logged with its
        traceback)."""
        kind = kind_of(error)
        (bound or _logger(run)).error("tenant-hour failed", error=str(error), kind=kind,
                                      exc_info=kind == "unexpected")
        telemetry.TENANT_HOURS.labels("failed").inc()
        telemetry.TENANT_HOUR_FAILURES.labels(kind).inc()
        failed = run.failed(f"{type(error).__name__}: {error}")
        try:
            self.sink.record(failed)
        except WorkerError as record_exc:  # ClickHouse itself is down: the run stays 'running', never visible
            log.warning("could not record the failure", run_id=str(run.run_id), error=str(record_exc))
        return HourOutcome(failed, kind, str(error))


@dataclass(frozen=True)
class _Priced:
    """An hour of a batch priced and checked, waiting for the batch's write."""

    run: RunRecord
    result: HourResult
    coverage: int
    bound: Any  # the hour's logger
    seconds: float  # spent pricing it


@dataclass
class _TenantHours:
    """A tenant's hours in a run of ``Pipeline.in_rounds``: those not fetched yet, those not ended yet (fetched
    ahead or waiting), and those committed whose days are not built again yet."""

    tenant: str
    pending: list[int]
    sized_by_census: bool  # its first batch: a tenant not seen yet, sized by the census of its first hour
    unfinished: list[int] = field(default_factory=list)
    committed: list[RunRecord] = field(default_factory=list)

    def __post_init__(self):
        self.unfinished = list(self.pending)


@dataclass(frozen=True)
class _Fetched:
    """A batch fetched, waiting for its turn: its hours' ``HourFetch``es, or the error that kept any query from
    being asked."""

    tenant_hours: _TenantHours
    hours: list[int]
    fetches: list[HourFetch]
    error: Exception | None = None


def _reported(ended: RunRecord, bound) -> HourOutcome:
    """A refused or committed hour, counted and logged."""
    if ended.status == RunStatus.REFUSED:
        telemetry.TENANT_HOURS.labels("refused").inc()
        bound.warning("tenant-hour refused", error=ended.error, rows=ended.rows_written, coverage=ended.coverage)
        return HourOutcome(ended)
    telemetry.TENANT_HOURS.labels("succeeded").inc()
    telemetry.ROWS_WRITTEN.inc(ended.rows_written)
    telemetry.UNPRICED_NODES.labels(ended.cloud_account_id).set(len(ended.unpriced_nodes))
    bound.info("tenant-hour done", rows=ended.rows_written, total_cost=round(ended.total_cost, 6),
               samples=ended.samples_seen, thanos_queries=ended.thanos_queries, thanos_bytes=ended.thanos_bytes)
    return HourOutcome(ended)


def _logger(run: RunRecord):
    return log.bind(tenant=run.cloud_account_id, hour=utc(run.hour).isoformat(), run_id=str(run.run_id))


def _measured(run: RunRecord, load: ThanosLoad) -> RunRecord:
    return run.measured(load.queries, load.bytes, load.samples)


@contextlib.contextmanager
def cyclic_gc_paused():
    """A batch allocates up to millions of objects (parsed JSON, series, rows) that live until it is written; the
    cyclic collector would walk them again and again (a third of the fetch at 2,000 pods) and find nothing to
    free, since reference counting frees them. Paused for a whole run of batches (``Pipeline.in_rounds``), not each
    hour: resumed between hours, its first collection walked everything the batch still held (the other hours'
    answers, the hours priced and not yet written), 6 % of a batched backfill's CPU at 2,000 pods. The cycles made
    meanwhile are collected every ``COLLECT_EVERY`` batches and once the run ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- backfill ----------------------------------------------------------------------------------------------------

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

    def count(self, outcome: HourOutcome) -> None:
        if outcome.status == RunStatus.FAILED:
            self.failed += 1
        elif outcome.status == RunStatus.REFUSED:
            self.refused += 1
        else:
            self.done += 1
            self.rows += outcome.record.rows_written
            self.total_cost += outcome.record.total_cost

    def line(self) -> str:
        jobs = self.done + self.failed
        line = (f"backfill: {self.done}/{jobs + self.refused} tenant-hours ({self.tenant_count} tenants x "
                f"{self.hour_count} hours), {self.rows} rows, total cost {self.total_cost:.4f}, {self.seconds:.1f} s, "
                f"{self.failed} failed")
        return line + (f", {self.refused} refused (less data than stored; --force replaces)" if self.refused else "")


def run_hours(pipeline: Pipeline, tenants: list[str], hour_starts: list[int], progress: bool = False,
              force: bool = False) -> HoursSummary:
    """Every tenant-hour of a backfill, in rounds: each tenant its next batch (``Pipeline.in_rounds``), so that the
    tenants advance together; a failed tenant-hour is recorded and the others go on."""
    from tqdm import tqdm

    summary = HoursSummary(tenant_count=len(tenants), hour_count=len(hour_starts))
    started = time.perf_counter()
    with tqdm(total=len(tenants) * len(hour_starts), disable=not progress, unit="tenant-hour",
              file=sys.stderr) as bar:
        for _, outcomes in pipeline.in_rounds(tenants, hour_starts, "backfill", force):
            for outcome in outcomes:
                summary.count(outcome)
            bar.update(len(outcomes))
    summary.seconds = time.perf_counter() - started
    return summary
