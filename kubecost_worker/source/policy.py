"""The source's fetch policy: which series Prometheus summarises, and which pods need their raw samples after all.

The model reads one figure of most pod-level series (``model/series.py`` names them): a mean, the first and
last positive sample, the labels, and of cAdvisor's usage series an increase or a mean and a maximum. Where such a
figure stands exactly for the samples, the source asks Prometheus for it instead of the samples; where it does not
(``samples_needed``), it fetches those series' samples, so the model computes the same numbers either way
(``tests/test_source_extract.py``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Mapping

from ..model.series import (CONTAINER_CPU_ALLOCATION, CONTAINER_CPU_USAGE_SECONDS_TOTAL, CONTAINER_GPU_ALLOCATION,
                            CONTAINER_MEMORY_ALLOCATION_BYTES, CONTAINER_MEMORY_WORKING_SET_BYTES,
                            KUBE_POD_CONTAINER_RESOURCE_REQUESTS, KUBE_POD_LABELS, KUBE_POD_OWNER, LABEL_METRICS,
                            NOT_CONTAINERS, RUNNING, Series, Summary, identity, resource_kind)

# Pod-level metrics: the bulk of a tenant-hour's samples. Of these the model takes only a mean (allocations and
# requests), the first and last positive sample (running series) or the labels (owners, pod labels). Prometheus
# reduces them, so that one number per series crosses the network instead of one per sample.
CONTAINER_SUMMARIES = (CONTAINER_CPU_ALLOCATION, CONTAINER_MEMORY_ALLOCATION_BYTES, CONTAINER_GPU_ALLOCATION,
                       KUBE_POD_CONTAINER_RESOURCE_REQUESTS)
COUNTED_SUMMARIES = (RUNNING, KUBE_POD_OWNER, KUBE_POD_LABELS)  # their per-series sample counts come along
# cAdvisor's usage series, one per container cgroup: of the CPU counter the model takes its increase and its highest
# irate, of the working set its mean and its highest sample (``Summary.increase``, ``mean``, ``maximum``).
USAGE_SUMMARIES = (CONTAINER_CPU_USAGE_SECONDS_TOTAL, CONTAINER_MEMORY_WORKING_SET_BYTES)
SUMMARISABLE = (*CONTAINER_SUMMARIES, *COUNTED_SUMMARIES, *USAGE_SUMMARIES)


def is_container(s: Series | Summary) -> bool:
    """Whether a usage series is a container's: cAdvisor's pod cgroup (``container=""``) and pause container
    (``"POD"``) are not, and the model leaves them out (summaries never include them)."""
    return s.labels.get("container", "") not in NOT_CONTAINERS


def usage_figures(metric: str, s: Summary) -> tuple[float, float]:
    """The figures the model takes of a usage summary: the CPU counter's increase or the working set's mean, and
    the maximum. NaN where the server could not give the figure exactly (a reset, a NaN sample...)."""
    return (s.increase if metric == CONTAINER_CPU_USAGE_SECONDS_TOTAL else s.mean), s.maximum


def pod_of(s: Series | Summary) -> tuple[str, str]:
    return s.labels.get("namespace", ""), s.labels.get("pod", "")


def samples_needed(series: Mapping[str, list[Series | Summary]], start: float,
                   end: float) -> dict[tuple[str, str], tuple[str, ...]]:
    """Per ``(namespace, pod)`` whose summaries cannot all stand for their samples, the summarised metrics whose series
    of it the source fetches as samples (in ``SUMMARISABLE`` order).

    Every one of them where the pod did not run as exactly one instance (uid) in ``[start, end)``: the model splits
    all its samples between instances by time, or takes the running time of a pod without running samples from its
    allocations; likewise a running series summarised without its first or last positive sample. Otherwise only
    the metrics where one of its series cannot be summarised, as the model reads each metric on its own:

    - a series the model would merge or add to another one: copies of one series (owners' too), two series of one
      container and resource, two label series of one pod, two working-set series of one container (the model
      averages their samples together; a restart is a new cgroup ``id``). Two CPU counters of one container stay
      summaries: the model adds their increases and takes the higher maximum, which the summaries give exactly;
    - a mean that is not finite: the model leaves NaN and infinite samples out;
    - a usage figure that is not finite: the source leaves it NaN where the server cannot compute the model's
      figure (a counter reset, two samples in the step before the hour, a NaN sample...).

    A pod both kube-state-metrics and the cost-model report (its requests, running, owner and label series twice)
    thus comes with those series as samples, its cAdvisor usage and allocations still summarised.
    """
    instances: dict[tuple[str, str], set[str]] = defaultdict(set)
    whole: set[tuple[str, str]] = set()
    for s in series.get(RUNNING, ()):
        if isinstance(s, Summary) and (s.first is None or s.last is None):
            whole.add(pod_of(s))
        elif isinstance(s, Summary) or any(start <= t < end and v > 0 for t, v in s.samples):
            instances[pod_of(s)].add(s.labels.get("uid", ""))
    single = {pod for pod, uids in instances.items() if len(uids) == 1}
    some: dict[tuple[str, str], set[str]] = defaultdict(set)
    for metric in SUMMARISABLE:
        summarised: dict[tuple, bool] = {}  # key -> whether a series of that key came as a summary
        for s in series.get(metric, ()):
            labels, pod = s.labels, pod_of(s)
            is_summary = isinstance(s, Summary)
            if metric in CONTAINER_SUMMARIES:
                key = (labels.get("cluster_id", ""), *pod, labels.get("container", ""),
                       resource_kind(labels.get("resource", "cpu")))
                if is_summary:
                    if pod not in single:
                        whole.add(pod)
                    elif not math.isfinite(s.mean):
                        some[pod].add(metric)
            elif metric in USAGE_SUMMARIES:
                if not is_container(s):
                    continue  # never a summary, and the model leaves them out
                if is_summary:
                    if pod not in single:
                        whole.add(pod)
                    elif not all(map(math.isfinite, usage_figures(metric, s))):
                        some[pod].add(metric)
                if metric == CONTAINER_MEMORY_WORKING_SET_BYTES:  # not the cgroup id: a container's series average
                    key = (labels.get("cluster_id", ""), *pod, labels.get("container", ""))
                else:
                    key = (labels.get("cluster_id", ""), *identity(metric, labels))
            elif metric in LABEL_METRICS:
                key = (labels.get("cluster_id", ""), *pod, labels.get("uid", ""))
            else:  # running and owner series: copies are merged
                key = (labels.get("cluster_id", ""), *identity(metric, labels))
            # a second series of one key: the model merges or adds them, which needs their samples
            if key in summarised and (is_summary or summarised[key]):
                some[pod].add(metric)
            summarised[key] = summarised.get(key, False) or is_summary
    needed = {pod: SUMMARISABLE for pod in whole}
    for pod, metrics in some.items():
        if pod not in whole:
            needed[pod] = tuple(m for m in SUMMARISABLE if m in metrics)
    return needed
