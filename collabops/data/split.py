"""Time-ordered train / validation / test split.

Rows are cut at timestamps, never shuffled: every training row is older than
every validation row, which is older than every test row, and all series
of one time land in the same part. This is what the model will face in
production (predicting a later period), and it keeps the test honest.

Times are compared as instants: the validated time column is aware on the
contract's clock, so the boundaries are aware times in that zone and the two
autumn 02:00 hours are two distinct, ordered times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from collabops.errors import ConfigError, DataError


@dataclass(frozen=True)
class SplitSettings:
    """Shares of the time range for validation and test, and the smallest part allowed."""

    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    min_rows_per_part: int = 200

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> SplitSettings:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"validation_fraction", "test_fraction", "min_rows_per_part"})
        if unknown:
            raise ConfigError(f"split: unknown setting(s) {', '.join(unknown)}")
        settings = cls(**raw)
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(settings, name)
            if not 0 < value < 1:
                raise ConfigError(f"split.{name} must be between 0 and 1, got {value}")
        if settings.validation_fraction + settings.test_fraction >= 0.9:
            raise ConfigError("split: validation_fraction + test_fraction must leave at least 10% for training")
        if settings.min_rows_per_part < 1:
            raise ConfigError(f"split.min_rows_per_part must be at least 1, got {settings.min_rows_per_part}")
        return settings

    @property
    def rows_needed(self) -> int:
        """Fewest rows that can give every part ``min_rows_per_part`` rows."""
        smallest = min(self.validation_fraction, self.test_fraction,
                       1 - self.validation_fraction - self.test_fraction)
        return int(np.ceil(self.min_rows_per_part / smallest))


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def distinct_times(times: pd.Series) -> pd.Index:
    """The distinct values of a time column, in order (an aware column gives aware times, ordered as instants)."""
    return pd.Index(times.unique()).sort_values()


def time_split(frame: pd.DataFrame, time_column: str, settings: SplitSettings, source: str) -> TimeSplit:
    """Cut ``frame`` into consecutive periods; raise ``DataError`` if a part is too small.

    The boundaries are the column's own values (aware times on the
    contract's clock for validated data), so every comparison is between
    instants.
    """
    times = distinct_times(frame[time_column])
    n_times = len(times)
    n_val = round(n_times * settings.validation_fraction)
    n_test = round(n_times * settings.test_fraction)
    n_train = n_times - n_val - n_test
    if len(frame) < settings.rows_needed or min(n_train, n_val, n_test) < 1:
        raise DataError(_too_few(frame, settings, source))
    val_start, test_start = times[n_train], times[n_train + n_val]
    ordered = frame.sort_values(time_column, kind="stable")
    moment = ordered[time_column]
    parts = TimeSplit(
        train=ordered[moment < val_start].reset_index(drop=True),
        validation=ordered[(moment >= val_start) & (moment < test_start)].reset_index(drop=True),
        test=ordered[moment >= test_start].reset_index(drop=True),
    )
    if min(len(parts.train), len(parts.validation), len(parts.test)) < settings.min_rows_per_part:
        raise DataError(_too_few(frame, settings, source))
    return parts


def _too_few(frame: pd.DataFrame, settings: SplitSettings, source: str) -> str:
    return (
        f"{source}: {len(frame)} rows are fewer than the time split needs: validation "
        f"{settings.validation_fraction:.0%} and test {settings.test_fraction:.0%} of the time range "
        f"with at least {settings.min_rows_per_part} rows in each part need at least "
        f"{settings.rows_needed} rows spread over time (see 'split' in the training config)"
    )


def hold_out_latest(frame: pd.DataFrame, time_column: str, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off the latest ``fraction`` of the time range: (the rest, the holdout), cut at an instant."""
    if not 0 < fraction < 1:
        raise ConfigError(f"holdout_fraction must be between 0 and 1, got {fraction}")
    times = distinct_times(frame[time_column])
    n_hold = max(1, round(len(times) * fraction))
    cut = times[len(times) - n_hold]
    moment = frame[time_column]
    return frame[moment < cut].reset_index(drop=True), frame[moment >= cut].reset_index(drop=True)
