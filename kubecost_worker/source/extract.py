"""Fetching the raw samples one tenant-hour needs, in one request."""

from __future__ import annotations

import math
from collections import defaultdict

from ..model.series import KEPT_PREFIX, NEEDED_METRICS, HourInput, Series
from .promql import names_matcher, tenant_matcher
from .thanos import ThanosClient


def hour_selector(tenant_label: str, tenant: str) -> str:
    """Every series the model needs for one tenant, plus every ``kubecost_*`` series."""
    return "{" + names_matcher(NEEDED_METRICS, [KEPT_PREFIX]) + ", " + tenant_matcher(tenant_label, tenant) + "}"


def fetch_hour(client: ThanosClient, tenant_label: str, tenant: str, start: int, end: int, step: int) -> HourInput:
    """Raw samples of ``[start - step, end)`` for one tenant.

    A range selector in an instant query returns each sample with its own timestamp; ``query_range`` would
    instead repeat a stopped pod's last value for the 5-minute lookback. The window reaches one step back
    so that counters have their last sample before the hour; the model drops what it does not need.
    Evaluating 1 ms before ``end`` keeps a sample at exactly ``end`` (the next hour's) out, whether the
    server's range is closed (Prometheus 2) or left-open (Prometheus 3).
    """
    window = end - start + step
    promql = f"{hour_selector(tenant_label, tenant)}[{window}s]"
    result = client.query(promql, end - 0.001)
    series: dict[str, list[Series]] = defaultdict(list)
    for item in result:
        labels = dict(item["metric"])
        name = labels.pop("__name__", "")
        if labels.get(tenant_label) != tenant:  # defence in depth: never take another tenant's series
            continue
        samples = [(float(t), float(v)) for t, v in item.get("values", ())]
        # NaN and infinite gauge values (a broken exporter) would poison every sum they enter: left out
        samples = [(t, v) for t, v in samples if start - step <= t < end and math.isfinite(v)]
        if samples:
            series[name].append(Series(labels, samples))
    return HourInput(tenant=tenant, start=start, end=end, step=step, series=dict(series))


def discover_tenants(client: ThanosClient, tenant_label: str) -> list[str]:
    return sorted(client.label_values(tenant_label))


def hourly_counts(client: ThanosClient, tenant_label: str, tenant: str, metrics: tuple[str, ...],
                  first_hour: int, last_hour: int) -> dict[int, int]:
    """Samples of ``metrics`` per hour in ``[first_hour, last_hour]``: one cheap ``count_over_time`` range query.

    Each point is evaluated 1 ms before its hour's end over the hour, the same window ``fetch_hour`` reads,
    so the counts compare with the ``coverage`` a run recorded.
    """
    selector = "{" + names_matcher(list(metrics)) + ", " + tenant_matcher(tenant_label, tenant) + "}"
    result = client.query_range(f"sum(count_over_time({selector}[3600s]))", first_hour + 3600 - 0.001,
                                last_hour + 3600 - 0.001, 3600)
    counts: dict[int, int] = {}
    for series in result:
        for t, value in series["values"]:
            counts[round(float(t) + 0.001) - 3600] = int(float(value))
    return counts
