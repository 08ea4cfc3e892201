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

    def _keys(self, X: pd.DataFrame) -> pd.DataFrame:
        moment = pd.to_datetime(X[self.time_column])
        return pd.DataFrame(
            {
                "entity": X[self.entity_column].to_numpy(),
                "day_of_week": moment.dt.dayofweek.to_numpy(),
                "hour": moment.dt.hour.to_numpy(),
            }
        )

    def fit(self, X: pd.DataFrame, y: Any) -> "SeasonalProfileBaseline":
        keys = self._keys(X)
        keys["y"] = np.asarray(y, dtype=float)
        self.profile_ = keys.groupby(["entity", "day_of_week", "hour"])["y"].mean()
        self.entity_mean_ = keys.groupby("entity")["y"].mean()
        self.global_mean_ = float(keys["y"].mean())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        keys = self._keys(X)
        index = pd.MultiIndex.from_frame(keys[["entity", "day_of_week", "hour"]])
        prediction = self.profile_.reindex(index).to_numpy()
        fallback = self.entity_mean_.reindex(keys["entity"]).to_numpy()
        prediction = np.where(np.isnan(prediction), fallback, prediction)
        return np.where(np.isnan(prediction), self.global_mean_, prediction)
