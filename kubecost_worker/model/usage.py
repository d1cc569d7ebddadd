"""What containers used (``docs/model.md``, "Requests and usage"): cAdvisor's CPU counter and working set, as
additive core-hours and byte-hours beside the requests, and the hour's maxima for rightsizing."""

from __future__ import annotations

import bisect
from typing import Sequence

from ..hours import HOUR
from . import timeline
from .cluster import ClusterHour, samples_of
from .pods import PodRows, Pods, samples_in
from .series import CONTAINER_CPU_USAGE_SECONDS_TOTAL, CONTAINER_MEMORY_WORKING_SET_BYTES, NOT_CONTAINERS, Summary


def allocate_usage(ctx: ClusterHour, pods: Pods, rows: PodRows) -> None:
    """Usage on the container rows the allocation made; a container without usage series keeps NULL (None)."""
    cpu = ctx.by(CONTAINER_CPU_USAGE_SECONDS_TOTAL, "namespace", "pod", "container")
    memory = ctx.by(CONTAINER_MEMORY_WORKING_SET_BYTES, "namespace", "pod", "container")
    for (ns, name, _, _, container), (pod, row) in rows.containers.items():
        if container in NOT_CONTAINERS:
            continue
        instances = pods[(ns, name)]
        if group := cpu.get((ns, name, container)):
            increases, maxima = [], []
            for s in group:
                if isinstance(s, Summary) and len(instances) == 1:
                    increases.append(s.increase)
                    maxima.append(s.maximum)
                    continue
                samples = samples_in(instances, pod, samples_of(s))
                if samples:
                    increases.append(timeline.counter_increase(samples))
                    maxima.append(irate_max(samples, ctx.start, ctx.end, ctx.step))
            if increases:
                row.cpu_usage_core_hours = sum(increases) / HOUR
                row.cpu_usage_max_cores = max((m for m in maxima if m is not None), default=None)
        if group := memory.get((ns, name, container)):
            if len(group) == 1 and isinstance(group[0], Summary) and len(instances) == 1:
                mean, maximum = group[0].mean, group[0].maximum
            else:
                samples = [x for s in group for x in samples_in(instances, pod, samples_of(s))]
                mean = timeline.mean(samples) if samples else None
                maximum = max((v for _, v in samples), default=None)
            if mean is not None:
                row.ram_usage_byte_hours = mean * pod.running_hours
                row.ram_usage_max_bytes = maximum


def irate_max(samples: Sequence[tuple[float, float]], start: float, end: float, step: int) -> float | None:
    """The highest irate of a counter on the hour's scrape grid, as Prometheus computes
    ``max_over_time(irate(x[2 x step - 1ms])[1h - step:step])`` at ``end - 1ms``: at each ``t = start + k x step``
    (``k = 1 ... 3600/step - 1``), the rate between the last two samples in ``[t - 2 x step + 1ms, t]`` (the later
    value alone where it dropped: a reset). None where no grid point has two samples."""
    times = [t for t, _ in samples]
    reach = 2 * step - 0.001
    best = None
    for k in range(1, round((end - start) / step)):
        t = start + k * step
        last = bisect.bisect_right(times, t) - 1
        if last < 1 or times[last - 1] < t - reach:
            continue
        (t1, v1), (t2, v2) = samples[last - 1], samples[last]
        # Prometheus keeps times in whole milliseconds: the same interval, not its float-seconds approximation
        rate = (v2 - v1 if v2 >= v1 else v2) / (round((t2 - t1) * 1000) / 1000)
        best = rate if best is None else max(best, rate)
    return best
