"""The naive seasonal baseline every model has to beat.

For each car park, it predicts the average target seen in training at the
same hour of the same weekday (a weekly seasonal profile), falling back to
the car park's mean and then the overall mean. If a model cannot beat this,
it has learned nothing a spreadsheet could not do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin


class SeasonalProfileBaseline(RegressorMixin, BaseEstimator):
    """Mean target per (entity, weekday, hour) over the training period."""

    def __init__(self, time_column: str = "timestamp", entity_column: str = "car_park_id") -> None:
        self.time_column = time_column
        self.entity_column = entity_column

    def _slots(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Entity of each row, and its hour of the week (0 = Monday 00:00)."""
        moment = pd.to_datetime(X[self.time_column])
        return X[self.entity_column].astype(str).to_numpy(), (moment.dt.dayofweek * 24 + moment.dt.hour).to_numpy()

    def fit(self, X: pd.DataFrame, y: Any) -> "SeasonalProfileBaseline":
        entity, slot = self._slots(X)
        y = np.asarray(y, dtype=float)
        self.entities_, row = np.unique(entity, return_inverse=True)
        sums = np.zeros((len(self.entities_), 168))
        counts = np.zeros((len(self.entities_), 168))
        np.add.at(sums, (row, slot), y)
        np.add.at(counts, (row, slot), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.profile_ = sums / counts  # NaN where a slot was never seen
            self.entity_mean_ = sums.sum(axis=1) / counts.sum(axis=1)
        self.global_mean_ = float(y.mean())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        entity, slot = self._slots(X)
        row = np.searchsorted(self.entities_, entity)
        known = (row < len(self.entities_)) & (self.entities_[np.minimum(row, len(self.entities_) - 1)] == entity)
        row = np.where(known, row, 0)
        prediction = np.where(known, self.profile_[row, slot], np.nan)
        prediction = np.where(np.isnan(prediction) & known, self.entity_mean_[row], prediction)
        return np.where(np.isnan(prediction), self.global_mean_, prediction)
