"""The learning task: which estimator, baseline, metric and promotion rule.

The task type is a config value (``task: regression``). Everything that
depends on it is reached through the ``Task`` protocol: its primary metric
(name, function, direction and scikit-learn scorer), its estimator and
baseline, and how it scores predictions overall and per segment. Code that
compares models asks the task (``task.better(a, b)``, ``task.primary_metric``)
and never branches on the task's name, so adding classification means adding
one class here and an entry in ``TASKS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

from collabops.data.contract import DataContract
from collabops.errors import ConfigError
from collabops.training import metrics
from collabops.training.baseline import SeasonalProfileBaseline


@runtime_checkable
class Task(Protocol):
    """What the training, promotion and acceptance code needs to know about a learning task."""

    @property
    def name(self) -> str:
        """The config's name of the task (``"regression"``)."""
        ...

    @property
    def primary_metric(self) -> str:
        """Name of the metric models are compared on; a key of ``score``'s result (``"mae"``)."""
        ...

    @property
    def greater_is_better(self) -> bool:
        """Direction of the primary metric: ``False`` for an error, ``True`` for a score."""
        ...

    @property
    def scoring(self) -> str:
        """The scikit-learn scorer name of the primary metric (``"neg_mean_absolute_error"``).

        Scorers are "greater is better" (``sklearn.metrics.get_scorer``), so
        for an error this is the metric negated.
        """
        ...

    def metric(self, y_true: ArrayLike, y_pred: ArrayLike) -> float:
        """The primary metric of ``y_pred`` against ``y_true`` (both shape ``(n,)``), with its natural sign."""
        ...

    def make_estimator(self, params: dict[str, Any]) -> BaseEstimator:
        """A new, unfitted estimator with ``params``; ``ConfigError`` for a parameter it does not take."""
        ...

    def make_baseline(self, contract: DataContract) -> BaseEstimator:
        """A new, unfitted naive baseline reading the contract's feature columns."""
        ...

    def score(self, y: ArrayLike, pred: ArrayLike) -> dict[str, float]:
        """Every metric of the task, by name; includes ``primary_metric``."""
        ...

    def segment_scores(self, frame: pd.DataFrame, contract: DataContract,
                       pred: ArrayLike) -> dict[str, dict[str, float]]:
        """The primary metric per group: ``{"by_segment": {...}, "by_hour_band": {...}}``."""
        ...

    def better(self, candidate: float, reference: float) -> bool:
        """Whether ``candidate`` beats ``reference`` on the primary metric (ties do not)."""
        ...


@dataclass(frozen=True)
class RegressionTask:
    """Predict a number; by default models are compared on mean absolute error.

    ``primary_metric`` is a key of ``metrics.METRICS`` (``"mae"``, ``"rmse"``
    or ``"r2"``); its direction and scorer come from there. Raises
    ``ConfigError`` for any other name.
    """

    name: str = "regression"
    primary_metric: str = "mae"

    def __post_init__(self) -> None:
        if self.primary_metric not in metrics.METRICS:
            raise ConfigError(f"task {self.name}: metric '{self.primary_metric}' is not supported "
                              f"(known: {', '.join(sorted(metrics.METRICS))})")

    @property
    def greater_is_better(self) -> bool:
        return metrics.METRICS[self.primary_metric].greater_is_better

    @property
    def scoring(self) -> str:
        return metrics.METRICS[self.primary_metric].scoring

    def metric(self, y_true: ArrayLike, y_pred: ArrayLike) -> float:
        return metrics.METRICS[self.primary_metric].function(y_true, y_pred)

    def make_estimator(self, params: dict[str, Any]) -> BaseEstimator:
        """``HistGradientBoostingRegressor(**params)``; ``ConfigError`` naming an unknown parameter."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        try:
            return HistGradientBoostingRegressor(**params)
        except TypeError as exc:
            raise ConfigError(f"search: invalid estimator parameter: {exc}") from None

    def make_baseline(self, contract: DataContract) -> BaseEstimator:
        return SeasonalProfileBaseline(time_column=contract.time_column, entity_column=contract.entity_column)

    def score(self, y: ArrayLike, pred: ArrayLike) -> dict[str, float]:
        """``{"mae": ..., "rmse": ..., "r2": ...}`` (``metrics.regression_metrics``)."""
        return metrics.regression_metrics(y, pred)

    def segment_scores(self, frame: pd.DataFrame, contract: DataContract,
                       pred: ArrayLike) -> dict[str, dict[str, float]]:
        """Primary metric per segment (the contract's segment column; empty without one) and per hour band."""
        y = frame[contract.target].to_numpy()
        hours = pd.to_datetime(frame[contract.time_column]).dt.hour
        pred = np.asarray(pred)
        by_segment = (metrics.metric_by(frame[contract.segment_column], y, pred, self.metric)
                      if contract.segment_column else {})
        return {"by_segment": by_segment, "by_hour_band": metrics.metric_by(metrics.hour_band(hours), y, pred,
                                                                            self.metric)}

    def better(self, candidate: float, reference: float) -> bool:
        """Strictly better on the primary metric: higher if ``greater_is_better``, else lower."""
        return candidate > reference if self.greater_is_better else candidate < reference


TASKS: dict[str, Task] = {"regression": RegressionTask()}


def get_task(name: str) -> Task:
    """The task registered as ``name``; ``ConfigError`` listing the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"task '{name}' is not supported (known: {', '.join(sorted(TASKS))})") from None
