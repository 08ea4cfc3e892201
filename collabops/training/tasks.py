"""The learning task: which estimator, baseline, metrics and promotion rule.

The task type is a config value (``task: regression``). Everything that
depends on it is reached through a ``Task``, so adding classification means
adding one class here and touching no pipeline or step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from collabops.training import metrics
from collabops.training.baseline import SeasonalProfileBaseline
from collabops.data.contract import DataContract
from collabops.errors import ConfigError


@dataclass(frozen=True)
class RegressionTask:
    """Predict a number; models are compared on mean absolute error."""

    name: str = "regression"
    primary_metric: str = "mae"
    greater_is_better: bool = False

    def make_estimator(self, params: dict[str, Any]) -> BaseEstimator:
        from sklearn.ensemble import HistGradientBoostingRegressor

        try:
            return HistGradientBoostingRegressor(**params)
        except TypeError as exc:
            raise ConfigError(f"search: invalid estimator parameter: {exc}") from None

    def make_baseline(self, contract: DataContract) -> BaseEstimator:
        return SeasonalProfileBaseline(time_column=contract.time_column, entity_column=contract.entity_column)

    def score(self, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
        return metrics.regression_metrics(y, pred)

    def segment_scores(self, frame: pd.DataFrame, contract: DataContract, pred: np.ndarray) -> dict[str, dict[str, float]]:
        """Primary metric per segment (e.g. car-park kind) and per hour band."""
        y = frame[contract.target].to_numpy()
        hours = pd.to_datetime(frame[contract.time_column]).dt.hour
        return {
            "by_segment": metrics.mae_by(frame[contract.segment_column], y, pred),
            "by_hour_band": metrics.mae_by(metrics.hour_band(hours), y, pred),
        }

    def better(self, candidate: float, reference: float) -> bool:
        """Whether ``candidate`` beats ``reference`` on the primary metric."""
        return candidate > reference if self.greater_is_better else candidate < reference


Task = RegressionTask
TASKS: dict[str, Task] = {"regression": RegressionTask()}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"task '{name}' is not supported (known: {', '.join(sorted(TASKS))})") from None
