"""Feature preparation that lives inside the fitted model.

The model takes the contract's feature columns as they are in the data and
does all preprocessing itself (calendar features, one-hot encoding), so the
industry partner serves exactly what the university trained: no
re-implementation of feature code on the other side of the boundary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from collabops.data.contract import DataContract

CALENDAR_FEATURES = ("hour", "day_of_week", "month", "day_of_year", "is_weekend")


class CalendarFeatures(TransformerMixin, BaseEstimator):
    """Replace the time column by hour, weekday, month, day of year and weekend flag."""

    def __init__(self, time_column: str = "timestamp") -> None:
        self.time_column = time_column

    def fit(self, X: pd.DataFrame, y: Any = None) -> "CalendarFeatures":
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        moment = pd.to_datetime(X[self.time_column])
        out = X.drop(columns=[self.time_column]).copy()
        out["hour"] = moment.dt.hour.astype("int16")
        out["day_of_week"] = moment.dt.dayofweek.astype("int16")
        out["month"] = moment.dt.month.astype("int16")
        out["day_of_year"] = moment.dt.dayofyear.astype("int16")
        out["is_weekend"] = (moment.dt.dayofweek >= 5).astype("int16")
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        kept = [c for c in self.feature_names_in_ if c != self.time_column]
        return np.asarray(kept + list(CALENDAR_FEATURES), dtype=object)


def categorical_columns(contract: DataContract) -> list[str]:
    """Feature columns that are one-hot encoded: strings, categories and flags."""
    return [
        name for name in contract.feature_columns
        if contract.column(name).type in ("string", "category", "bool")
    ]


def build_model(contract: DataContract, estimator: BaseEstimator) -> Pipeline:
    """A scikit-learn ``Pipeline``: calendar features -> one-hot -> ``estimator``."""
    encode = ColumnTransformer(
        [
            (
                "categories",
                OneHotEncoder(handle_unknown="ignore", drop="if_binary", sparse_output=False),
                categorical_columns(contract),
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    return Pipeline(
        [
            ("calendar", CalendarFeatures(time_column=contract.time_column)),
            ("encode", encode),
            ("estimator", estimator),
        ]
    )
