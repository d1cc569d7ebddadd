"""Fetching what one tenant-hour needs: Prometheus reduces the pod-level series, the rest comes as samples.

Most of a tenant-hour's samples are pod-level series of which the model takes one figure each
(``policy.SUMMARISABLE``): the mean of an allocation or request, the first and last positive sample of a running series,
the labels of an owner or label series, the increase, mean and maximum of cAdvisor's usage series. Prometheus
computes those figures, so one number per series crosses the network instead of 60 samples. Prices, capacities,
volumes, the network counter and every ``kubecost_*`` series come as samples. Series the figures cannot describe
exactly (``policy.samples_needed``: a pod's series of some metrics, or all of them) are fetched again as samples, so
the model computes the same numbers either way (``tests/test_source_extract.py``).

Answers are checked for what they claim before the model sees them (``ThanosBadAnswer``, retried and never
stored): samples are sorted by time where a server sent them out of order, a sample repeated with the same value
is read once, two different values at one timestamp are refused; every summary must cover as many series as a
census of the hour counts, and a re-fetch must bring back every series it replaces.
"""

from __future__ import annotations

import bisect
import math
import re
import statistics
import sys
from array import array
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import chain
from operator import itemgetter, lt, sub
from typing import Any, Callable, Generic, Iterable, Iterator, Sequence, TypeVar

from ..errors import WorkerError
from ..hours import HOUR
from ..model.cluster import window
from ..model.series import (CONTAINER_CPU_USAGE_SECONDS_TOTAL, CONTAINER_MEMORY_WORKING_SET_BYTES, KEPT_PREFIX,
                            NEEDED_METRICS, NOT_CONTAINERS, RUNNING, HourInput, Series, Summary)
from . import promql
from .policy import (CONTAINER_SUMMARIES, COUNTED_SUMMARIES, SUMMARISABLE, USAGE_SUMMARIES, is_container, pod_of,
                     samples_needed)
from .thanos import ThanosBadAnswer, ThanosClient, ThanosDownsampled, ThanosLoad

# Samples of a series typically further apart than this many scrape steps are not the raw scrape (a missed scrape
# now and then is one gap of two steps; a downsampled block is 5 steps or 60 apart throughout).
SPACING_TOLERANCE = 1.5
SPACING_SERIES = 2000  # series whose spacing is looked at: plenty to tell, cheap at 10,000 pods

# A churning 10,000-pod tenant can need the samples of a thousand pods; one regex of all their names would make
# a URL of tens of kB, which proxies in front of Thanos refuse (8 kB is a common limit).
MAX_PATTERN_CHARS = 4000

# A batch's hours read ahead of the one priced (``read_ahead``): an hour's read waits on Prometheus between its
# requests, and reading several fills those waits; 2 gained a 200-pod backfill 3 % of its wall, 3 gained 5 %, 5
# no more (docs/benchmarks.md). Each is an hour's input more in memory, within the batch's series-hours.
READ_AHEAD = 3

# What an hour's summary answer is keyed by (``_Column``): the model's labels of each series, shared by the hours of
# a batch, or an aggregated answer's labels as answered
LABELS, FIGURES, AGGREGATED = "labels", "figures", "aggregated"
T, U = TypeVar("T"), TypeVar("U")
# An hour's series (summaries and samples) by metric, and the sample counts the server gave
_Summarised = tuple[dict[str, list[Series | Summary]], dict[str, int]]

# The figures asked of each usage series (``promql``'s templates), and the one every usage series with samples in
# the hour has: what the census counts
USAGE_FIGURES = {CONTAINER_MEMORY_WORKING_SET_BYTES: promql.WORKING_SET_FIGURES,
                 CONTAINER_CPU_USAGE_SECONDS_TOTAL: promql.CPU_COUNTER_FIGURES}
IN_HOUR = {CONTAINER_CPU_USAGE_SECONDS_TOTAL: "last", CONTAINER_MEMORY_WORKING_SET_BYTES: "mean"}


def fetch_hour(client: ThanosClient, tenant_label: str, tenant: str, start: int, end: int, step: int,
               summarise: bool = True, census: "Census | None" = None) -> HourInput:
    """What the model needs of ``[start, end)`` for one tenant; every series as samples if not ``summarise``. A
    census asked ahead (the function ``census``) that covers the hour is taken instead of asked again."""
    promql.tenant_matcher(tenant_label, tenant)  # refuses an unsafe id before any request
    if not summarise:
        every_series = promql.names_matcher(NEEDED_METRICS, [KEPT_PREFIX])
        series, counted = fetch_samples(client, tenant_label, tenant, every_series, start, end, step)
        check_resolution(series, start, end, step)
        return HourInput(tenant=tenant, start=start, end=end, step=step, series=series, counted=counted)
    if end - start != HOUR:
        raise ValueError("a summarised fetch covers one whole hour")
    summaries, = _fetch_summarised_hours(client, tenant_label, tenant, [start], step, census)
    return _completed(client, tenant_label, tenant, start, step, summaries)


@dataclass(frozen=True)
class HourFetch:
    """One hour of a batch, fetched when its turn comes: ``read()`` makes its input or raises the hour's own error,
    so that a failure fails that hour only, and ``load()`` is what the hour has asked of Thanos so far: its own
    requests and its share of the batch's shared queries (divided evenly)."""

    start: int
    read: Callable[[], HourInput]
    own: ThanosLoad
    shared: ThanosLoad = field(default_factory=ThanosLoad)
    sharing: int = 1  # the hours that share ``shared``

    def load(self) -> ThanosLoad:
        return ThanosLoad(queries=round(self.shared.queries / self.sharing) + self.own.queries,
                          bytes=round(self.shared.bytes / self.sharing) + self.own.bytes,
                          samples=round(self.shared.samples / self.sharing) + self.own.samples)


def read_ahead(fetches: list[HourFetch]) -> Iterator[HourFetch]:
    """The hours of a batch in turn, each one's input read while the ones before it are priced: Thanos answers the
    next hours' queries while this process computes the current one. ``READ_AHEAD`` hours are read ahead at most,
    so that as many hours' inputs and one more are in memory at a time; an hour's error is still its own, raised by
    its ``read``."""
    if len(fetches) < 2:
        yield from fetches
        return
    with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="read-ahead") as reader:
        upcoming = deque(reader.submit(fetch.read) for fetch in fetches[:READ_AHEAD])
        for k, fetch in enumerate(fetches):
            current = upcoming.popleft()
            if k + READ_AHEAD < len(fetches):
                upcoming.append(reader.submit(fetches[k + READ_AHEAD].read))
            yield replace(fetch, read=current.result)


def read_now(fetch: HourFetch) -> HourFetch:
    """``fetch`` read here and now (a batch fetched ahead, its first hour with it): its ``read`` then gives the
    input made, or raises the hour's error, as it would have."""
    done: Future = Future()
    try:
        done.set_result(fetch.read())
    except Exception as exc:  # the hour's own error: raised when its turn comes
        done.set_exception(exc)
    return replace(fetch, read=done.result)


def fetch_hours(client: ThanosClient, tenant_label: str, tenant: str, starts: list[int], step: int,
                census: "Census | None" = None) -> list[HourFetch]:
    """The consecutive hours ``starts`` of one tenant, each to be read in its turn as ``fetch_hour`` would read it.

    The summaries of all the hours come from one range query each, at a one-hour step (each point is the
    instant query of one hour, evaluated where ``fetch_hour`` evaluates it), asked here: a series' labels cross
    the network once for every hour, and Prometheus finds the series once. So do the samples (prices, capacities,
    kubecost_* series): one request over the hours, each hour's window cut from it. The pods that need their
    samples are fetched by each hour's ``read``, as for one hour. An hour's input is made when it is read and its
    answers dropped then, so that the series of the hours read ahead (``read_ahead``) are in memory beside the
    batch's answers, not every hour's. Should the shared queries fail, each hour is fetched on its own, so that its
    fate is its own. A ``census`` asked ahead (``census``, to size the batch) is taken for the hours it covers
    instead of asked again. Raises only what no hour could get past: a tenant id outside the safe alphabet, hours
    that are not consecutive."""
    _refuse_unfit(tenant_label, tenant, starts)
    own = [client.counting() for _ in starts]
    if len(starts) == 1:  # nothing to share: the hour as fetch_hour fetches it
        alone = _alone(own[0], tenant_label, tenant, starts[0], step, census)
        return [replace(alone, shared=client.load) if census is not None else alone]  # the census its share
    try:
        summaries = _fetch_summarised_hours(client, tenant_label, tenant, starts, step, census)
    except WorkerError:  # a shared query failed: each hour on its own, so that its fate is its own
        return [_alone(hour_client, tenant_label, tenant, start, step) for start, hour_client in zip(starts, own)]
    return [HourFetch(start, partial(_completed, hour_client, tenant_label, tenant, start, step, summary),
                      hour_client.load, client.load, len(starts))
            for start, hour_client, summary in zip(starts, own, summaries)]


@dataclass(frozen=True)
class Census:
    """The census of consecutive hours, asked ahead of a batch: per hour, the series of each summarised metric
    with samples in it (``promql.SERIES_IN_HOUR``), its answer as a batch's census query gives it."""

    starts: list[int]
    per_hour: list["_Column"]

    def series(self) -> int:
        """The summarised series of the fullest hour: what a batch of these hours is sized by."""
        return max((sum(_count(promql.SERIES_IN_HOUR, v) for _, v in column.items()) for column in self.per_hour),
                   default=0)

    def of(self, starts: list[int]) -> list["_Column"]:
        """The census of the first hours of ``starts`` (consecutive) it covers: none where it does not cover the
        first."""
        if not starts or starts[0] not in self.starts:
            return []
        first = self.starts.index(starts[0])
        return self.per_hour[first:first + len(starts)]


def census(client: ThanosClient, tenant_label: str, tenant: str, starts: list[int], step: int) -> Census:
    """The census of the consecutive hours ``starts`` of one tenant: one query (a range query at a one-hour step
    for several hours), the one a batch of them would ask. Asked ahead, it tells how many hours a batch of a tenant
    not seen yet may take (``Pipeline``); the batch then takes it from here (``fetch_hours``)."""
    _refuse_unfit(tenant_label, tenant, starts)
    batch = _Batch(client, tenant_label, tenant, starts, step)
    return Census(list(starts), _at_each_hour(batch, _summary_queries(batch).census, HOUR - 0.001, AGGREGATED))


def _refuse_unfit(tenant_label: str, tenant: str, starts: list[int]) -> None:
    """What no hour of a batch could get past, refused before any request: a tenant id outside the safe alphabet,
    hours that are not consecutive."""
    promql.tenant_matcher(tenant_label, tenant)
    if any(b - a != HOUR for a, b in zip(starts, starts[1:])):
        raise ValueError("a batch takes consecutive hours")


def _alone(client: ThanosClient, tenant_label: str, tenant: str, start: int, step: int,
           census: "Census | None" = None) -> HourFetch:
    return HourFetch(start, partial(fetch_hour, client, tenant_label, tenant, start, start + HOUR, step,
                                    census=census), client.load)


def _completed(client: ThanosClient, tenant_label: str, tenant: str, start: int, step: int,
               summaries: Callable[[], _Summarised]) -> HourInput:
    """An hour's summaries made whole: the samples of the pods the summaries cannot describe exactly."""
    end = start + HOUR
    series, counted = summaries()
    check_resolution(series, start, end, step)
    # Pods that started or stopped inside the hour: their running samples pin down when.
    unknown = {pod_of(s) for s in series.get(RUNNING, ()) if s.first is None or s.last is None}
    _replace_pods(series, unknown, (RUNNING,), client, tenant_label, tenant, start, end, step)
    # the series the summaries cannot stand for: a query per set of metrics, all of a pod's or some (a few sets)
    by_metrics: dict[tuple[str, ...], set[tuple[str, str]]] = defaultdict(set)
    for pod, metrics in samples_needed(series, start, end).items():
        by_metrics[metrics].add(pod)
    for metrics, pods in sorted(by_metrics.items()):
        _replace_pods(series, pods, metrics, client, tenant_label, tenant, start, end, step)
    return HourInput(tenant=tenant, start=start, end=end, step=step, series=series, counted=counted)


def _fetch_summarised_hours(client: ThanosClient, tenant_label: str, tenant: str, starts: list[int], step: int,
                            census: "Census | None" = None) -> list[Callable[[], _Summarised]]:
    """Per hour of ``starts`` (consecutive), what makes its summaries of the ``SUMMARISABLE`` metrics, its samples
    of the others and the sample counts the server gave, or raises that hour's error. Raises where a query all
    hours share fails.

    About a dozen queries whatever the number of hours (instant queries for one hour, range queries at a one-hour
    step for several; the samples of the hours in one request), ``KCW_THANOS_PARALLEL_QUERIES`` in flight at once:
    the server works on several while this process parses. An hour's answers become summaries, and its window is
    cut from the samples, only when its turn comes; its answers are dropped then.
    """
    batch = _Batch(client, tenant_label, tenant, starts, step)
    queries = _summary_queries(batch)
    answers, samples = _ask_summaries(batch, queries, census.of(starts) if census is not None else [])
    return [partial(_hour_summaries, batch, queries, answers, samples, k) for k in range(len(starts))]


@dataclass(frozen=True)
class _Batch:
    """Consecutive hours of one tenant whose summaries are asked together, and the client that asks them."""

    client: ThanosClient
    tenant_label: str
    tenant: str
    starts: list[int]
    step: int
    # the model's labels of each series answered, by its label names and values as answered (``labels_of``)
    known: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)

    def labels_of(self, metric: dict[str, str]) -> dict[str, str]:
        """The model's labels of an answer's series (``_labels``): one dict per series for every answer of the
        batch, made once, so that a series' figures and times are joined on it (by ``id``) and its hours share it.
        Kept by its names and values in one flat tuple of interned strings (a tuple per label would cost a large
        tenant-hour tens of MB). Answered from the batch's threads: ``setdefault`` keeps one dict should two
        threads make it at once."""
        labels = self.known.get(tuple(chain.from_iterable(metric.items())))
        if labels is None:  # the first answer of this series, or the server ordered its labels otherwise there
            ordered = sorted(metric.items())
            labels = self.known.setdefault(_interned(chain.from_iterable(ordered)), _labels(metric, self.tenant_label))
            if list(metric.items()) != ordered:
                self.known[_interned(chain.from_iterable(metric.items()))] = labels
        return labels


@dataclass(frozen=True)
class _PerQuery(Generic[T]):
    """One thing per summary query, by metric: its PromQL (``_SummaryQueries``), its answer per hour of a batch
    (``_Answers``) or one hour's answer (``_PerQuery[_Column]``)."""

    means: dict[str, T]
    # a query per figure of the metric: one query of every figure, each tagged with its name (``or`` of
    # ``label_replace``s), cost Prometheus 1.4-1.6x their CPU (tagging and matching every series at every step)
    usage: dict[str, dict[str, T]]
    counts: dict[str, T]
    first_running: T
    last_running: T
    census: T

    def map(self, fn: Callable[[T], U]) -> "_PerQuery[U]":
        return _PerQuery({m: fn(q) for m, q in self.means.items()},
                         {m: {name: fn(q) for name, q in figures.items()} for m, figures in self.usage.items()},
                         {m: fn(q) for m, q in self.counts.items()}, fn(self.first_running), fn(self.last_running),
                         fn(self.census))

    def each(self) -> list[T]:
        return [*self.means.values(), *(q for figures in self.usage.values() for q in figures.values()),
                *self.counts.values(), self.first_running, self.last_running, self.census]


@dataclass(frozen=True)
class _SummaryQueries(_PerQuery[str]):
    """``promql``'s templates filled in for one tenant and scrape step: what an hour's summaries ask, by metric, and
    the matchers of the metrics that come as samples."""

    sampled: str


def _summary_queries(batch: _Batch) -> _SummaryQueries:
    client, step = batch.client, batch.step
    # the ranges the templates name (``promql``'s docstring)
    ranges = {"hour": client.range_selector(HOUR), "step": client.range_selector(step),
              "hour_and_step": client.range_selector(HOUR + step), "two_steps": client.range_selector(2 * step),
              "hour_seconds": HOUR, "hour_less_step_seconds": HOUR - step, "step_seconds": step}
    of = partial(promql.selector, batch.tenant_label, batch.tenant)
    summarised = partial(_summarised_selector, batch.tenant_label, batch.tenant)
    running = of(RUNNING)
    return _SummaryQueries(
        means={m: promql.MEAN.format(series=of(m), **ranges) for m in CONTAINER_SUMMARIES},
        usage={m: {name: template.format(series=summarised(m), **ranges) for name, template in templates.items()}
               for m, templates in USAGE_FIGURES.items()},
        counts={m: promql.SAMPLE_COUNT.format(series=of(m), **ranges) for m in COUNTED_SUMMARIES},
        first_running=promql.FIRST_RUNNING.format(series=running, **ranges),
        last_running=promql.LAST_RUNNING.format(series=running, **ranges),
        census=promql.either([promql.SERIES_IN_HOUR.format(series=summarised(m), metric=m, **ranges)
                              for m in SUMMARISABLE]),
        sampled=promql.names_matcher([m for m in NEEDED_METRICS if m not in SUMMARISABLE], [KEPT_PREFIX]),
    )


def _summarised_selector(tenant_label: str, tenant: str, metric: str) -> str:
    """The series a summary of ``metric`` covers: cAdvisor's pod cgroup and pause container are not containers, the
    model leaves them out, the server too."""
    if metric in USAGE_SUMMARIES:
        return promql.selector(tenant_label, tenant, metric, promql.excluded("container", NOT_CONTAINERS))
    return promql.selector(tenant_label, tenant, metric)


class _Column:
    """One hour's answer to a summary query, held until the hour is read: each series' key in a list (``_key``), its
    value as a float in an array, 16 bytes a series, where the value as the server wrote it in a (key, value) pair
    would take about 120: a batch's hours wait in memory as these. A value that is not a number is the hour's
    error, raised when it is read, as the answer of that hour alone would have raised it."""

    __slots__ = ("keys", "_values", "_error")

    def __init__(self, query: str, keys: list, texts: list):
        self.keys = keys
        try:
            self._values, self._error = array("d", map(float, texts)), None
        except (TypeError, ValueError):
            bad = next(t for t in texts if not _is_number(t))
            self._values, self._error = array("d"), f"{query[:80]}: a value that is not a number: {str(bad)[:80]}"

    def items(self) -> Iterator[tuple[Any, float]]:
        """Each series' key and value; raises the hour's ``ThanosBadAnswer`` where a value is not a number."""
        if self._error is not None:
            raise ThanosBadAnswer(self._error)
        return zip(self.keys, self._values)


_READ = _Column("", [], [])  # what an hour's answer is once read


def _is_number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


# Each summary query's answer per hour of a batch; an hour's read puts ``_READ`` in its place
_Answers = _PerQuery[list[_Column]]


def _ask_summaries(batch: _Batch, queries: _SummaryQueries, census: list[_Column]) -> tuple[_Answers, Future]:
    """Every summary query of the batch, in parallel (the census of the hours after those ``census`` gives), and the
    samples of its hours beside them (one request, each series' labels made once for all its hours, and no hour's
    read waiting on it). Raises where a shared query fails: one failing fails every hour (the caller then fetches
    each on its own; an hour alone is asked in its own turn, so the error is its own)."""
    starts = batch.starts
    at_end, after_first_step = HOUR - 0.001, batch.step - 0.001  # from each hour's start
    with ThreadPoolExecutor(batch.client.settings.parallel_queries) as pool:
        samples = (pool.submit(fetch_samples, batch.client, batch.tenant_label, batch.tenant, queries.sampled,
                               starts[0], starts[0] + HOUR, batch.step) if len(starts) == 1 else
                   pool.submit(_batch_samples, batch.client, batch.tenant_label, batch.tenant, queries.sampled, starts,
                               batch.step))
        # the costliest first (the census reads every summarised series, each running time two or three selectors
        # of the running series, the usage figures the most series), so that the last answer is not a long one
        # begun last while Prometheus has cores to spare
        census_answers = pool.submit(_census_after, batch, queries.census, at_end, census)
        first_running = pool.submit(_at_each_hour, batch, queries.first_running, after_first_step)
        last_running = pool.submit(_at_each_hour, batch, queries.last_running, at_end)
        usage = {m: {name: pool.submit(_at_each_hour, batch, q, at_end, FIGURES) for name, q in figures.items()}
                 for m, figures in queries.usage.items()}
        answers = _PerQuery({m: pool.submit(_at_each_hour, batch, q, at_end) for m, q in queries.means.items()},
                            usage,
                            {m: pool.submit(_at_each_hour, batch, q, at_end) for m, q in queries.counts.items()},
                            first_running, last_running, census_answers).map(Future.result)
        samples.result()  # in a batch, a bad sample of one hour makes each hour fetched alone: it fails that one only
    return answers, samples


def _census_after(batch: _Batch, query: str, offset: float, census: list[_Column]) -> list[_Column]:
    """The batch's census: that of its first hours ``census`` gives, then that of the rest asked."""
    rest = batch.starts[len(census):]
    return census + (_at_each_hour(replace(batch, starts=rest), query, offset, AGGREGATED) if rest else [])


def _at_each_hour(batch: _Batch, query: str, offset: float, kind: str = LABELS) -> list[_Column]:
    """The instant vector ``query`` evaluated at ``offset`` into each hour, as a column of the tenant's series: the
    key is the model's labels of the series (``LABELS``; ``FIGURES``, the same of a usage figure's answer), or the
    answer's labels as they are (``AGGREGATED``: every series, none has a tenant label left). Made here, in the
    thread that fetched the answer, once per series for all its hours: the parsed answer goes as soon as its
    columns are made, and a batch holds nothing but what the model reads."""
    starts = batch.starts
    if len(starts) == 1:
        items = [i for i in batch.client.query(query, starts[0] + offset) if _is_tenants(i, kind, batch)]
        return [_Column(query, [_key(i["metric"], kind, batch) for i in items], [i["value"][1] for i in items])]
    keys: list[list] = [[] for _ in starts]
    texts: list[list] = [[] for _ in starts]
    hour_at: dict[Any, int] = {}  # each point's time as answered -> its hour: every series has the same few
    for item in batch.client.query_range(query, starts[0] + offset, starts[-1] + offset, HOUR):
        if not _is_tenants(item, kind, batch):
            continue
        key = _key(item["metric"], kind, batch)
        for point in item["values"]:
            try:
                k = hour_at.get(point[0])
                if k is None:
                    k = hour_at[point[0]] = round((float(point[0]) - offset - starts[0]) / HOUR)
                value = point[1]
            except (TypeError, ValueError, LookupError, OverflowError) as exc:
                raise ThanosBadAnswer(f"{query[:80]}: a point that is not [time, value]: {str(point)[:80]}") from exc
            if not 0 <= k < len(starts):
                raise ThanosBadAnswer(f"{query[:80]}: a point at {point[0]} outside the hours asked")
            keys[k].append(key)
            texts[k].append(value)
    return [_Column(query, *hour) for hour in zip(keys, texts)]


def _is_tenants(item: dict, kind: str, batch: _Batch) -> bool:
    """Defence in depth, as for samples: only the tenant's series (an aggregated answer has no tenant label)."""
    return kind == AGGREGATED or item["metric"].get(batch.tenant_label) == batch.tenant


def _key(metric: dict, kind: str, batch: _Batch) -> Any:
    if kind == AGGREGATED:
        return metric
    if kind == FIGURES:
        metric.pop("__name__", None)  # last_over_time keeps it, the other functions drop it
    return batch.labels_of(metric)


def _hour_summaries(batch: _Batch, queries: _SummaryQueries, answers: _Answers, samples: Future, k: int
                    ) -> _Summarised:
    """Hour ``k``'s summaries, its answers dropped once read, whether they made summaries or an error."""
    start = batch.starts[k]
    try:
        sampled = samples.result() if len(batch.starts) == 1 else _in_window(samples.result(), start, start + HOUR,
                                                                              batch.step)
        return _summaries(answers.map(itemgetter(k)), sampled, start, queries)
    finally:
        for per_hour in answers.each():
            per_hour[k] = _READ


def _summaries(answers: _PerQuery[_Column], sampled: tuple[dict, dict], start: int, queries: _SummaryQueries
               ) -> _Summarised:
    """One hour's series and sample counts from its answers (and its samples), checked against its census. A
    series' labels dict is shared by its hours' summaries (never changed)."""
    series: dict[str, list[Series | Summary]] = {
        m: [Summary(labels, mean=v) for labels, v in answers.means[m].items()] for m in queries.means}
    usage = {m: _figures(m, answers.usage[m]) for m in queries.usage}
    counted_series = {m: [(labels, _count(queries.counts[m], v)) for labels, v in answers.counts[m].items()]
                      for m in queries.counts}
    first_times, last_times = _times(answers.first_running), _times(answers.last_running)
    expected = {labels["metric"]: _count(queries.census, v) for labels, v in answers.census.items()
                if "metric" in labels}
    sampled_series, counted = sampled
    in_hour = {m: [s for s, inside in group if inside] for m, group in usage.items()}
    for metric, found in (*series.items(), *counted_series.items(), *in_hour.items()):
        if len(found) != expected.get(metric, 0):
            raise ThanosBadAnswer(f"{metric}: the summary lists {len(found)} series where the hour has "
                                  f"{expected.get(metric, 0)}: an answer is incomplete")
    for metric, group in counted_series.items():
        counted[metric] = sum(n for _, n in group)
        if metric == RUNNING:
            series[metric] = [_running(labels, first_times, last_times, start) for labels, _ in group]
        else:
            series[metric] = [Summary(labels) for labels, _ in group]
    for metric, group in usage.items():  # samples not counted: coverage reads the sentinels only
        series[metric] = [s for s, _ in group]
    return {**sampled_series, **{m: g for m, g in series.items() if g}}, counted


def _times(column: _Column) -> dict[int, float]:
    """A time per series (keyed by its labels dict's ``id``: one per series, ``_Batch.labels_of``), from an answer of
    ``timestamp``."""
    return {id(labels): t for labels, t in column.items()}


def _figures(metric: str, figures: dict[str, _Column]) -> list[tuple[Summary, bool]]:
    """Several figures of each series from their answers, by figure: the summaries and whether each one's series
    has samples in the hour (what the census counts). A series' figures are joined on its labels dict, one per
    series (``_Batch.labels_of``)."""
    by_series: dict[int, tuple[dict[str, str], dict[str, float]]] = {}
    for name, column in figures.items():
        for labels, value in column.items():
            found = by_series.setdefault(id(labels), (labels, {}))[1]
            if name in found:
                raise ThanosBadAnswer(f"{metric}: an answer of figure {name!r} gives a series twice: {dict(labels)}")
            found[name] = value
    return [(_usage(metric, labels, found), IN_HOUR[metric] in found) for labels, found in by_series.values()]


def _usage(metric: str, labels: dict[str, str], found: dict[str, float]) -> Summary:
    """A usage series' summary from the figures the server gave of it. The CPU counter's increase is its last
    sample in the hour less its lowest from the step before the hour on: without a reset that is the sample the
    model counts from (the last before the hour, or the hour's first for a container that started inside it), so
    exactly the model's reset-aware sum; NaN (its pod is fetched as samples) where the server's figures cannot give
    it. A counter with samples only before the hour (a container that stopped just before it) gets a summary too:
    NaN, so that the samples the model reads of it come."""
    if metric == CONTAINER_MEMORY_WORKING_SET_BYTES:
        return Summary(labels, mean=found.get("mean", math.nan), maximum=found.get("maximum", math.nan))
    regular = "last" in found and "lowest" in found and "irregular" not in found
    return Summary(labels, increase=found["last"] - found["lowest"] if regular else math.nan,
                   maximum=found.get("maximum", math.nan))


def _running(labels: dict[str, str], first_times: dict, last_times: dict, start: int) -> Summary:
    """A running series' summary: its first and last positive sample where the server pinned them down."""
    first, last = first_times.get(id(labels), -1.0), last_times.get(id(labels), -1.0)
    return Summary(labels, first=first if first >= start else None, last=last if last >= start else None)


def _replace_pods(series: dict[str, list[Series | Summary]], pods: set[tuple[str, str]], metrics: tuple[str, ...],
                  client: ThanosClient, tenant_label: str, tenant: str, start: int, end: int, step: int) -> None:
    """Puts the samples of ``pods`` in place of whatever ``series`` holds of them for ``metrics``: one query per
    batch of pod names."""
    if not pods:
        return
    fetched: dict[str, list[Series]] = defaultdict(list)
    seen: dict[str, set[frozenset]] = defaultdict(set)
    for pattern in pod_patterns(sorted({pod for _, pod in pods}), MAX_PATTERN_CHARS):
        matchers = promql.names_matcher(list(metrics)) + ", " + promql.matching("pod", pattern)
        for metric, group in fetch_samples(client, tenant_label, tenant, matchers, start, end, step, seen)[0].items():
            fetched[metric].extend(group)  # the hour's sample counts came with the summaries already
    kept_of: dict[str, list[Series | Summary]] = {}
    for metric in metrics:
        kept, replaced = [], set()
        for s in series.get(metric, ()):
            if pod_of(s) in pods:
                replaced.add(frozenset(s.labels.items()))
            else:
                kept.append(s)
        if not replaced <= seen[metric]:
            raise ThanosBadAnswer(f"{metric}: the samples of {len(replaced - seen[metric])} of the {len(replaced)} "
                                  "series re-fetched did not come back: an answer is incomplete")
        kept_of[metric] = kept
    for metric, kept in kept_of.items():
        # the same pod name in other namespaces; cAdvisor's non-containers as the summaries leave them out
        # in label order whatever the batches: the same input however the pods were split
        kept += sorted((s for s in fetched.get(metric, ()) if pod_of(s) in pods
                        and (metric not in USAGE_SUMMARIES or is_container(s))), key=lambda s: sorted(s.labels.items()))
        if kept:
            series[metric] = kept
        else:
            series.pop(metric, None)


def pod_patterns(names: list[str], max_chars: int) -> list[str]:
    """Regexes matching exactly ``names``, each at most ``max_chars`` long (unless one name alone is longer)."""
    patterns: list[str] = []
    for escaped in (re.escape(name) for name in names):
        if patterns and len(patterns[-1]) + 1 + len(escaped) <= max_chars:
            patterns[-1] += "|" + escaped
        else:
            patterns.append(escaped)
    return patterns


def _interned(strings) -> tuple[str, ...]:
    return tuple(map(sys.intern, strings))


def _labels(parsed: dict[str, str], tenant_label: str) -> dict[str, str]:
    """The labels of a series as the model takes them: without the tenant label (every series of the hour has the
    same), each value shared with the series of the other metrics (``sys.intern``): a pod's name, namespace and
    node recur in a dozen series, and a large tenant-hour holds 100,000 label sets."""
    return {k: sys.intern(v) for k, v in parsed.items() if k != tenant_label}


def fetch_samples(client: ThanosClient, tenant_label: str, tenant: str, matchers: str, start: int, end: int,
                  step: int, seen: dict[str, set[frozenset]] | None = None
                  ) -> tuple[dict[str, list[Series]], dict[str, int]]:
    """Samples of ``[start - step, end)`` of the series ``matchers`` selects for one tenant, and per metric the
    samples inside ``[start, end)`` as the server counts them (NaN included, as ``count_over_time`` does).

    A range selector in an instant query returns each sample with its own timestamp; ``query_range`` would
    instead repeat a stopped pod's last value for the 5-minute lookback. The window reaches one step back
    so that counters have their last sample before the hour; the model drops what it does not need.
    Evaluating 1 ms before ``end`` keeps a sample at exactly ``end`` (the next hour's) out, whether the
    server's range is closed (Prometheus 2) or left-open (Prometheus 3); the window is cut again here.
    ``seen`` (when given) gets the labels of every series of the tenant answered, with or without usable samples.
    """
    return _in_window(_answered(client, tenant_label, tenant, matchers, start, end, step, seen), start, end, step)


# Each series of a samples answer before it is cut to an hour: (metric, labels, times, values), ascending by time
_Sampled = Iterable[tuple[str, dict[str, str], Sequence[float], Sequence[float]]]


def _answered(client: ThanosClient, tenant_label: str, tenant: str, matchers: str, start: int, end: int, step: int,
              seen: dict[str, set[frozenset]] | None = None) -> _Sampled:
    """The series of ``fetch_samples``'s request over ``[start - step, end)``, one at a time, not yet cut to an
    hour."""
    query = promql.RAW_SAMPLES.format(series=promql.selector(tenant_label, tenant, matchers=matchers),
                                      seconds=end - start + step)
    for item in client.samples(query, end - 0.001):
        labels = dict(item["metric"])
        name = labels.pop("__name__", "")
        if labels.pop(tenant_label, None) != tenant:  # defence in depth: never take another tenant's series
            continue
        if seen is not None:
            seen[name].add(frozenset(labels.items()))
        yield name, labels, *_in_order(name, item["values"])


def _batch_samples(client: ThanosClient, tenant_label: str, tenant: str, matchers: str, starts: list[int],
                   step: int) -> list[tuple[str, dict[str, str], array, array]]:
    """The samples of the consecutive hours ``starts`` from one request, held until each hour is cut from them
    (``_in_window``): the numbers in arrays, 16 bytes a sample, a seventh of what a (time, value) pair takes."""
    return [(name, labels, array("d", times), array("d", values)) for name, labels, times, values
            in _answered(client, tenant_label, tenant, matchers, starts[0], starts[-1] + HOUR, step)]


def _in_window(found: _Sampled, start: int, end: int, step: int) -> tuple[dict[str, list[Series]], dict[str, int]]:
    """``fetch_samples``'s series and counts of ``[start, end)`` from ``found`` (an answer over it or more)."""
    series: dict[str, list[Series]] = defaultdict(list)
    counted: dict[str, int] = defaultdict(int)
    for name, labels, times, values in found:
        first, in_hour, last = (bisect.bisect_left(times, t) for t in (start - step, start, end))
        counted[name] += last - in_hour
        in_window = values[first:last]
        samples = list(zip(times[first:last], in_window))
        # NaN and infinite gauge values (a broken exporter) would poison every sum they enter: left out (a finite
        # sum says at C speed that there are none, but for one that overflows)
        if not math.isfinite(sum(in_window)):
            samples = [(t, v) for t, v in samples if math.isfinite(v)]
        if samples:
            series[name].append(Series(labels, samples))
    return dict(series), dict(counted)


def check_resolution(series: dict[str, list[Series | Summary]], start: int, end: int, step: int) -> None:
    """Refuses an hour whose raw samples are typically spaced wider than the scrape step (the median over series of
    each one's median gap): downsampled data would be priced as if each sample stood for one step."""
    gaps = []
    for group in series.values():
        for s in group:
            if len(gaps) >= SPACING_SERIES:
                break
            if isinstance(s, Series):  # its samples ascending by time (``_in_order``)
                times = [t for t, _ in window(s.samples, start, end)]
                if len(times) >= 3:
                    gaps.append(statistics.median(map(sub, times[1:], times)))
    if gaps and statistics.median(gaps) > SPACING_TOLERANCE * step:
        raise ThanosDownsampled(f"samples {statistics.median(gaps):.0f} s apart where the scrape step is {step} s: "
                                "a downsampled block (raw samples gone, or max_source_resolution not honoured) or a "
                                "slower scrape; not stored")


def _in_order(name: str, points: list) -> tuple[list[float], list[float]]:
    """A series' samples as times and values, ascending by time: the model's arithmetic depends on it. Sorted where
    the server sent them out of order, a sample repeated with the same value read once; two values at one time
    cannot both be right, and neither is chosen. Converted at C speed (``map``): a large tenant-hour has a
    million samples."""
    try:
        if points and set(map(len, points)) != {2}:
            raise ValueError("not a pair")
        times = list(map(float, map(itemgetter(0), points)))
        values = list(map(float, map(itemgetter(1), points)))
        if not math.isfinite(sum(times)):
            raise ValueError("a time that is not a finite number")
    except (TypeError, ValueError) as exc:
        raise ThanosBadAnswer(f"{name}: a sample that is not [time, value]: {exc}") from exc
    if all(map(lt, times, times[1:])):
        return times, values
    ordered: list[tuple[float, float]] = []
    for t, v in sorted(zip(times, values), key=itemgetter(0)):
        if ordered and ordered[-1][0] == t:
            previous = ordered[-1][1]
            if previous == v or (math.isnan(previous) and math.isnan(v)):
                continue
            raise ThanosBadAnswer(f"{name}: two samples at {t:.3f} with different values ({previous!r}, {v!r})")
        ordered.append((t, v))
    return [t for t, _ in ordered], [v for _, v in ordered]


def _count(query: str, value: float) -> int:
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise ThanosBadAnswer(f"{query[:80]}: a count that is not a count: {value!r}")
    return int(value)


def discover_tenants(client: ThanosClient, tenant_label: str) -> list[str]:
    return sorted(client.label_values(tenant_label))


def hourly_counts(client: ThanosClient, tenant_label: str, tenant: str, metrics: tuple[str, ...],
                  first_hour: int, last_hour: int) -> dict[int, int]:
    """Samples of ``metrics`` per hour in ``[first_hour, last_hour]``: one cheap ``count_over_time`` range query.

    Each point is evaluated 1 ms before its hour's end over exactly the hour, the window ``fetch_hour`` reads,
    so the counts compare with the ``coverage`` a run recorded.
    """
    series = promql.selector(tenant_label, tenant, matchers=promql.names_matcher(list(metrics)))
    query = promql.HOURLY_SAMPLE_COUNT.format(series=series, hour=client.range_selector(HOUR))
    result = client.query_range(query, first_hour + HOUR - 0.001, last_hour + HOUR - 0.001, HOUR)
    counts: dict[int, int] = {}
    for series in result:
        for t, value in series["values"]:
            counts[round(float(t) + 0.001) - HOUR] = int(float(value))
    return counts
