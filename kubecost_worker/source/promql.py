"""What the source asks of Thanos, on one screen: every PromQL template it sends, and the building of selectors,
where outside data only ever enters a query as an escaped string literal.

The templates are ``str.format`` strings. ``{series}`` is a selector (``selector``: a metric, the tenant's matcher,
perhaps more matchers); ``{hour}``, ``{step}``, ``{two_steps}`` and ``{hour_and_step}`` are ranges as
``ThanosClient.range_selector`` writes them, exact on either kind of server when evaluated 1 ms before a window's
end; the rest are plain seconds. A summary is evaluated 1 ms before its hour's end unless said otherwise.
"""

from __future__ import annotations

from ..config import is_safe_tenant_id
from ..errors import TerminalError

# -- samples ---------------------------------------------------------------------------------------------------

# An instant query of a range selector answers each sample with its own timestamp (a range query would repeat a
# stopped pod's last value for the 5-minute lookback).
RAW_SAMPLES = "{series}[{seconds}s]"
# Samples per hour, one point per hour of a range query at a one-hour step: what the scheduler compares
HOURLY_SAMPLE_COUNT = "sum(count_over_time({series}[{hour}]))"

# -- one figure per series of an hour --------------------------------------------------------------------------

# allocations and requests: the model takes their mean
MEAN = "avg_over_time({series}[{hour}])"
# running, owner and label series: the model takes their labels (and the running series' times, below); the count
# is what the samples path would have counted
SAMPLE_COUNT = "count_over_time({series}[{hour}])"
# The time of the first step's sample if it is the step's only one and positive: the hour's first sample (when it
# is not older than the hour). Evaluated 1 ms before the end of the hour's first step.
FIRST_RUNNING = "timestamp({series}) and {series} > 0 and count_over_time({series}[{step}]) == 1"
# the time of the latest sample if positive: the hour's last
LAST_RUNNING = "timestamp({series}) and {series} > 0"

# cAdvisor's usage series, several figures of each series, a query per figure
WORKING_SET_FIGURES = {
    "mean": "avg_over_time({series}[{hour}])",
    "maximum": "max_over_time({series}[{hour}])",
}
CPU_COUNTER_FIGURES = {
    "last": "last_over_time({series}[{hour}])",
    # a counter without a reset only grows: its lowest sample from the step before the hour on is the one the
    # increase counts from (the last before the hour, else the hour's first: a container that started inside it);
    # {hour_and_step} is [start - step, end), every sample the increase may read
    "lowest": "min_over_time({series}[{hour_and_step}])",
    # where last - lowest is not the model's increase: a reset (resets() counts v < previous, as the model does;
    # over the whole window, so conservatively), a NaN or infinite sample (0 x it is NaN, and NaN != 0; resets()
    # does not see a reset across a NaN, the model, leaving the NaN out, does), two samples in the step before the
    # hour (the model keeps only the later, the irate of the first grid point may read both). The step before the
    # hour is the first step's range offset by an hour.
    "irregular": "resets({series}[{hour_and_step}]) > 0 or 0 * sum_over_time({series}[{hour_and_step}]) != 0 "
                 "or count_over_time({series}[{step}] offset {hour_seconds}s) > 1",
    # the irate at t = start + k x step, k = 1 ... hour/step - 1 (a subquery's points are the multiples of its
    # step inside its range, here (start + step - 1 ms, end - 1 ms]), each of the last two samples in
    # [t - (2 x step - 1 ms), t]
    "maximum": "max_over_time(irate({series}[{two_steps}])[{hour_less_step_seconds}s:{step_seconds}s])",
}

# -- the census: what the summaries must add up to ---------------------------------------------------------------

# Series of a summarised metric in the hour: a summary listing fewer (a proxy or store dropping part of an answer)
# is refused, not priced as if complete
SERIES_IN_HOUR = 'label_replace(count(count_over_time({series}[{hour}])), "metric", "{metric}", "", "")'

# -- the server ------------------------------------------------------------------------------------------------

# Whether the server's ranges are closed at both ends, asked once (``ThanosClient.range_selector``); needs no data
RANGE_KIND_PROBE = "count_over_time(vector(1)[60s:1s])"


def either(queries: list[str]) -> str:
    """One query answering every one of ``queries`` (their results never share a label set)."""
    return " or ".join(queries)


def selector(tenant_label: str, tenant: str, metric: str = "", matchers: str = "") -> str:
    """The tenant's series: ``metric{tenant_id="<tenant>", <matchers>}``, or with no metric named
    ``{<matchers>, tenant_id="<tenant>"}``; ``matchers`` are built by the functions below."""
    tenant_only = tenant_matcher(tenant_label, tenant)
    if metric:
        return metric + "{" + tenant_only + (", " + matchers if matchers else "") + "}"
    return "{" + (matchers + ", " if matchers else "") + tenant_only + "}"


def quote(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly ``value``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def tenant_matcher(tenant_label: str, tenant: str) -> str:
    """``tenant_id="<tenant>"``; refuses a tenant id outside the safe alphabet.

    Refusing is the first defence, escaping the second: even an id that slipped past validation stays one
    string literal and cannot close the selector or add a matcher.
    """
    if not is_safe_tenant_id(tenant):
        raise TerminalError(f"tenant id outside the safe alphabet: {tenant!r}")
    return f"{tenant_label}={quote(tenant)}"


def names_matcher(names: list[str], prefixes: list[str] = ()) -> str:
    """``__name__=~"a|b|prefix_.+"`` for fixed metric names (which are ours, not outside data)."""
    alternatives = [*names, *(f"{p}.+" for p in prefixes)]
    return f"__name__=~{quote('|'.join(alternatives))}"


def matching(label: str, pattern: str) -> str:
    """``label=~"<pattern>"``."""
    return f"{label}=~{quote(pattern)}"


def excluded(label: str, values: tuple[str, ...]) -> str:
    """``label!="a", label!="b"``."""
    return ", ".join(f"{label}!={quote(v)}" for v in values)
