"""The reference's season: compare a period with the same days of the year, not with a whole year.

A month is part of a year: its hours, weekdays and temperatures differ from
a year of reference without anything being wrong (a January against a whole
year moves the temperature by more than one standard deviation). So a period
is compared with the reference rows whose day of the year lies within
``window_days`` of one of the period's days, on the contract's clock (local
wall time). Whole weeks on both sides keep hours and weekdays in proportion.
When the reference holds fewer than ``min_rows`` such rows (a model trained on
February, monitored in March), the nearest ``min_rows`` rows by day of the
year are used instead and :attr:`Season.covered` is False: the verdict says
the reference does not cover the season.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAYS_IN_YEAR = 366
"""Days of the year are compared on a circle of this many days (pandas' ``dayofyear`` runs 1..366)."""


@dataclass(frozen=True)
class Season:
    """The reference rows a period is compared with, and how they were chosen."""

    rows: pd.DataFrame
    covered: bool
    """True: the reference has at least ``min_rows`` rows within ``window_days`` of the period's days."""
    window_days: int
    first: str | None
    last: str | None
    """First and last time of the chosen reference rows (ISO 8601 with offset), None when empty."""

    def describe(self) -> str:
        span = f"{self.first[:10]} to {self.last[:10]}" if self.first and self.last else "no rows"
        if self.covered:
            return (f"reference season: {len(self.rows):,} rows within {self.window_days} days of the period's "
                    f"days of the year ({span})")
        return (f"the reference does not cover this season: compared with its {len(self.rows):,} rows nearest "
                f"in the year ({span})")


def circular_day_distance(days: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Distance in days of each of ``days`` (shape ``(n,)``) to the nearest of ``to`` (shape ``(m,)``), on the
    year's circle; ints 1..366 in, ints 0..183 out. ``to`` must not be empty."""
    wanted = np.zeros(DAYS_IN_YEAR + 1, dtype=bool)
    wanted[np.unique(to)] = True
    marked = np.flatnonzero(wanted)
    # distance from each day of the year to the nearest marked day, computed once for the 366 days
    grid = np.arange(DAYS_IN_YEAR + 1)
    gap = np.abs(grid[:, None] - marked[None, :])
    nearest = np.minimum(gap, DAYS_IN_YEAR - gap).min(axis=1)
    return nearest[days]


def select_season(reference: pd.DataFrame, current_times: pd.Series, time_column: str, window_days: int,
                  min_rows: int) -> Season:
    """The reference rows of the current period's season.

    ``reference``: frame with ``time_column`` as aware datetimes; ``current_times``:
    the period's times (aware, same clock), not empty. Rows within
    ``window_days`` days of the year of any current day are the season;
    if fewer than ``min_rows``, the ``min_rows`` rows nearest in day of the
    year (all rows when the reference is smaller) and ``covered=False``.
    """
    if len(current_times) == 0:
        raise ValueError("select_season: the current period has no rows")
    days = reference[time_column].dt.dayofyear.to_numpy()
    distance = circular_day_distance(days, current_times.dt.dayofyear.unique())
    inside = distance <= window_days
    covered = int(inside.sum()) >= min_rows
    if covered:
        rows = reference.loc[inside]
    else:
        order = np.argsort(distance, kind="stable")[:min(min_rows, len(reference))]
        rows = reference.iloc[np.sort(order)]
    times = rows[time_column]
    first = times.min().isoformat() if len(rows) else None
    last = times.max().isoformat() if len(rows) else None
    return Season(rows=rows.reset_index(drop=True), covered=covered, window_days=window_days, first=first,
                  last=last)
