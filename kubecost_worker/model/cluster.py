"""One cluster of one tenant-hour, as every part of the allocation reads it: a frozen context of the cluster's
series (windowed to the hour, copies merged), and the book of rows the parts add their costs to."""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping

from . import timeline
from .rows import ExpenseRow
from .series import COUNTERS, LABEL_METRICS, HourInput, Series, Summary, deduplicate, label_values


@dataclass(frozen=True)
class ClusterHour:
    """The series of one cluster in ``[start, end)``: samples inside the hour (a counter keeps the last one before
    it), copies of one series merged (label series kept apart: the latest copy wins), summaries as sent."""

    tenant: str
    cluster_id: str
    hour: int
    step: int
    start: float
    end: float
    series: Mapping[str, list[Series | Summary]]

    @classmethod
    def of_input(cls, inp: HourInput, cluster_id: str, series: Mapping[str, list[Series | Summary]]) -> "ClusterHour":
        start, end = float(inp.start), float(inp.end)
        prepared: dict[str, list[Series | Summary]] = {}
        for metric, group in series.items():
            summaries = [s for s in group if isinstance(s, Summary)]  # already windowed by the source
            sampled = [s for s in group if isinstance(s, Series)]
            cut = counter_window if metric in COUNTERS else window
            windowed = [w for w in (Series(s.labels, cut(s.samples, start, end)) for s in sampled) if w.samples]
            windowed += summaries
            prepared[metric] = windowed if metric in LABEL_METRICS else deduplicate(metric, windowed)
        return cls(inp.tenant, cluster_id, inp.start, inp.step, start, end, prepared)

    def of(self, metric: str) -> list[Series | Summary]:
        return self.series.get(metric, [])

    def by(self, metric: str, *keys: str) -> dict[tuple[str, ...], list[Series | Summary]]:
        grouped: dict[tuple[str, ...], list[Series | Summary]] = defaultdict(list)
        for s in self.of(metric):
            grouped[label_values(s.labels, keys)].append(s)
        return grouped

    def node_gauges(self, metric: str) -> dict[str, list[tuple[float, float]]]:
        return {s.labels.get("node", ""): s.samples for s in self.of(metric)}

    def latest_labels(self, metric: str, *keys: str) -> dict[tuple[str, ...], dict[str, str]]:
        """The ``label_*`` labels (prefix removed) of the latest series of each key of a label metric, whose copies
        are kept apart (``LABEL_METRICS``): the latest copy in the hour wins, ties by labels."""
        latest = {}
        for key, group in self.by(metric, *keys).items():
            newest = group[0] if len(group) == 1 else max(group, key=lambda s: (samples_of(s)[-1][0],
                                                                                 sorted(s.labels.items())))
            latest[key] = {k.removeprefix("label_"): v for k, v in newest.labels.items() if k.startswith("label_")}
        return latest

    def active_cost(self, s: Series) -> float:
        """Integral of a $/hour gauge over its active interval."""
        t0, t1 = timeline.span([t for t, _ in s.samples], self.step, self.end)
        return timeline.integral(s.samples, t0, t1)


@dataclass
class RowBook:
    """The rows of one cluster-hour by key, created on first use; the nodes found without prices."""

    ctx: ClusterHour
    rows: dict[tuple[str, ...], ExpenseRow] = field(default_factory=dict)
    unpriced_nodes: list[str] = field(default_factory=list)

    def row(self, namespace: str, kind: str, name: str, pod: str = "", node: str = "",
            labels: dict[str, str] | None = None, container: str = "", pod_uid: str = "",
            service: str = "") -> ExpenseRow:
        key = (self.ctx.cluster_id, namespace, kind, name, pod, node, container, pod_uid)
        if key not in self.rows:
            self.rows[key] = ExpenseRow(self.ctx.tenant, self.ctx.cluster_id, self.ctx.hour, namespace, kind, name,
                                        pod, node, labels=dict(labels or {}), container=container, pod_uid=pod_uid,
                                        service=service)
        return self.rows[key]


def samples_of(s: Series | Summary) -> list[tuple[float, float]]:
    """The samples of a series; a summary in their place is a bug of the source (its fetch policy)."""
    if isinstance(s, Summary):
        raise ValueError(f"a summary where the model needs samples: {dict(s.labels)}")
    return s.samples


def window(samples, start: float, end: float) -> list[tuple[float, float]]:
    """The samples (ascending by time) inside ``[start, end)``: two binary searches and a slice."""
    return samples[bisect.bisect_left(samples, (start,)):bisect.bisect_left(samples, (end,))]


def counter_window(samples, start: float, end: float) -> list[tuple[float, float]]:
    """A counter's samples inside ``[start, end)`` plus the last one before ``start``."""
    before = [x for x in samples if x[0] < start]
    return before[-1:] + window(samples, start, end)
