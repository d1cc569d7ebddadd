"""Arithmetic on piecewise-constant gauges: the building blocks of the cost model.

A gauge's value at time ``t`` is its latest sample at or before ``t`` (its earliest sample before the first
one). Integrals are in value-hours.
"""

from __future__ import annotations

from typing import Sequence

from ..hours import HOUR

Samples = Sequence[tuple[float, float]]


def mean(samples: Samples) -> float:
    return sum(v for _, v in samples) / len(samples) if samples else 0.0


def span(timestamps: Sequence[float], step: int, end: float) -> tuple[float, float]:
    """Active interval of something sampled at ``timestamps``: ``[first, min(last + step, end))``."""
    first, last = min(timestamps), max(timestamps)
    return first, min(last + step, end)


def _pieces(samples: Samples, t0: float, t1: float) -> list[tuple[float, float, float]]:
    """``(from, to, value)`` pieces covering ``[t0, t1)``."""
    if not samples or t1 <= t0:
        return []
    pieces = []
    value = samples[0][1]
    cursor = t0
    for t, v in samples:
        if t <= t0:
            value = v
            continue
        if t >= t1:
            break
        pieces.append((cursor, t, value))
        cursor, value = t, v
    pieces.append((cursor, t1, value))
    return pieces


def integral(samples: Samples, t0: float, t1: float) -> float:
    """Integral over ``[t0, t1)`` in value-hours."""
    return sum((b - a) * v for a, b, v in _pieces(samples, t0, t1)) / HOUR


def time_weighted_mean(samples: Samples, t0: float, t1: float) -> float:
    if t1 <= t0 or not samples:
        return 0.0
    return integral(samples, t0, t1) * HOUR / (t1 - t0)


def product_integral(a: Samples, b: Samples, t0: float, t1: float) -> float:
    """Integral of ``a(t) x b(t)`` over ``[t0, t1)`` in value-hours; 0 when either gauge has no sample."""
    if not a or not b or t1 <= t0:
        return 0.0
    cuts = sorted({t0, t1, *(t for t, _ in a if t0 < t < t1), *(t for t, _ in b if t0 < t < t1)})
    total = 0.0
    i = j = 0  # a[i], b[j]: the latest sample at or before the cut (or the first sample, before it)
    for lo, hi in zip(cuts, cuts[1:]):
        while i + 1 < len(a) and a[i + 1][0] <= lo:
            i += 1
        while j + 1 < len(b) and b[j + 1][0] <= lo:
            j += 1
        total += (hi - lo) * a[i][1] * b[j][1]
    return total / HOUR


def counter_increase(samples: Samples) -> float:
    """Sum of the increases between consecutive samples; a decrease is a reset and the new value counts."""
    total = 0.0
    for (_, previous), (_, current) in zip(samples, samples[1:]):
        total += current - previous if current >= previous else current
    return total
