"""The naive seasonal baseline every model has to beat.

For each series (a value of the contract's entity column, or the one series
when there is none), it predicts the average target seen in training at the
same hour of the same weekday (a weekly seasonal profile), falling back to
the series' mean and then the overall mean. If a model cannot beat this,
it has learned nothing a spreadsheet could not do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from collabops.training.features import Column, column_values, read_input, to_moments

HOURS_PER_WEEK = 168


class SeasonalProfileBaseline(RegressorMixin, BaseEstimator):
    """Mean target per (entity, weekday, hour) over the training period.

    ``time_column`` and ``entity_column`` are column names (DataFrame input)
    or positions (any input); how they are read is described in
    ``collabops.training.features``. Entities are compared as strings
    (``str`` of each value); ``entity_column=None`` is one series (a contract
    without an entity column). Other columns are ignored.

    Fitted attributes: ``entities_`` (sorted entity keys, shape ``(e,)``),
    ``profile_`` (mean target per entity and hour of the week, shape
    ``(e, 168)``, NaN where a slot was never seen), ``entity_mean_`` (shape
    ``(e,)``), ``global_mean_`` (float), plus scikit-learn's
    ``n_features_in_`` and, for a DataFrame, ``feature_names_in_``.
    """

    def __init__(self, time_column: Column = "timestamp", entity_column: Column | None = None) -> None:
        self.time_column = time_column
        self.entity_column = entity_column

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # Arrays are validated as numeric and finite (check_array); strings (entity ids, dates) are read
        # from DataFrames only.
        tags.input_tags.allow_nan = False
        tags.input_tags.string = False
        return tags

    def _columns(self) -> dict[str, Column]:
        columns = {"time_column": self.time_column}
        if self.entity_column is not None:
            columns["entity_column"] = self.entity_column
        return columns

    def _slots(self, X: pd.DataFrame | np.ndarray, positions: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """Entity key (str) of each row, and its hour of the week (0 = Monday 00:00 ... 167), both shape ``(n,)``."""
        moment = to_moments(column_values(X, positions["time_column"]), self, self.time_column)
        if "entity_column" not in positions:  # one series: every row is the same entity
            return np.full(len(moment), "", dtype=object), (moment.dt.dayofweek * 24 + moment.dt.hour).to_numpy()
        entity = pd.Series(np.asarray(column_values(X, positions["entity_column"])))
        if pd.api.types.is_float_dtype(entity.dtype):
            entity = entity.astype(np.float64)  # one key per value: str(float32(0.1)) != str(float(float32(0.1)))
        entity = entity.astype(str).to_numpy()
        return entity, (moment.dt.dayofweek * 24 + moment.dt.hour).to_numpy()

    def fit(self, X: pd.DataFrame | ArrayLike, y: ArrayLike) -> SeasonalProfileBaseline:
        """Average ``y`` (shape ``(n,)``, the target's unit) per entity and hour of the week. Returns ``self``.

        Raises ``ValueError`` for ``y`` of another length, a missing ``y``
        value, a missing time, or (array input) non-numeric or non-finite X
        (``collabops.training.features.read_input``).
        """
        X, y, positions = read_input(self, X, y, reset=True, columns=self._columns())
        entity, slot = self._slots(X, positions)
        self.entities_, row = np.unique(entity, return_inverse=True)
        sums = np.zeros((len(self.entities_), HOURS_PER_WEEK))
        counts = np.zeros((len(self.entities_), HOURS_PER_WEEK))
        np.add.at(sums, (row, slot), y)
        np.add.at(counts, (row, slot), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.profile_ = sums / counts  # NaN where a slot was never seen
            self.entity_mean_ = sums.sum(axis=1) / counts.sum(axis=1)
        self.global_mean_ = float(y.mean())
        return self

    def predict(self, X: pd.DataFrame | ArrayLike) -> np.ndarray:
        """Profile value of each row's (entity, hour of week), shape ``(n,)``, in the target's unit.

        Falls back to the entity's mean for a slot never seen in training,
        and to the overall mean for an entity never seen. Raises
        ``NotFittedError`` before ``fit`` and ``ValueError`` as ``fit`` does.
        """
        check_is_fitted(self)
        X, _, positions = read_input(self, X, reset=False, columns=self._columns())
        entity, slot = self._slots(X, positions)
        row = np.searchsorted(self.entities_, entity)
        known = (row < len(self.entities_)) & (self.entities_[np.minimum(row, len(self.entities_) - 1)] == entity)
        row = np.where(known, row, 0)
        prediction = np.where(known, self.profile_[row, slot], np.nan)
        prediction = np.where(np.isnan(prediction) & known, self.entity_mean_[row], prediction)
        return np.where(np.isnan(prediction), self.global_mean_, prediction)

