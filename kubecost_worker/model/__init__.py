"""Model: the pure cost math. Plain series in (``series.HourInput``), plain rows out (``allocation``).

Nothing here does I/O or reads the clock, so every number can be checked by hand.
"""

from .allocation import compute_hour
from .rows import ExpenseRow, HourResult, MetricSample
from .series import HourInput, Series

__all__ = ["ExpenseRow", "HourInput", "HourResult", "MetricSample", "Series", "compute_hour"]
