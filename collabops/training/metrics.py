"""Regression metrics, overall and per group, computed by ``sklearn.metrics``.

Every metric here is a scikit-learn function (``mean_absolute_error``,
``root_mean_squared_error``, ``r2_score``); this module only names them, says
which direction is better and which scikit-learn scorer string matches each,
so a task can pick one by name (``METRICS["mae"]``). Inputs are 1-D
array-likes of equal length ``n`` in the target's unit (an occupancy rate for
the parking contract); MAE and RMSE come out in that unit, R² is unitless.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

MetricFunction = Callable[[ArrayLike, ArrayLike], float]

# Parts of the day whose errors matter differently to the operator: (name, first hour, end hour exclusive).
HOUR_BANDS = (
    ("night", 0, 6),
    ("morning", 6, 10),
    ("midday", 10, 16),
    ("evening", 16, 20),
    ("late", 20, 24),
)


def hour_band(hours: pd.Series | np.ndarray) -> np.ndarray:
    """Name of the hour band of each hour of day.

    ``hours``: shape ``(n,)``, integers 0-23. Returns an object array of shape
    ``(n,)``; an hour outside 0-23 gets ``None``.
    """
    hours = np.asarray(hours)
    out = np.empty(hours.shape, dtype=object)
    for name, start, end in HOUR_BANDS:
        out[(hours >= start) & (hours < end)] = name
    return out


def mae(y: ArrayLike, pred: ArrayLike) -> float:
    """Mean absolute error, in the target's unit (``sklearn.metrics.mean_absolute_error``).

    Raises ``ValueError`` (from scikit-learn) on inputs of different length or containing NaN.
    """
    return float(mean_absolute_error(y, pred))


def rmse(y: ArrayLike, pred: ArrayLike) -> float:
    """Root mean squared error, in the target's unit (``sklearn.metrics.root_mean_squared_error``)."""
    return float(root_mean_squared_error(y, pred))


def r2(y: ArrayLike, pred: ArrayLike) -> float:
    """Coefficient of determination (``sklearn.metrics.r2_score``), unitless, at most 1.

    NaN when ``y`` is constant (or has fewer than two values): R² is undefined
    there. This is ``r2_score(..., force_finite=False)`` with its ``-inf``
    (constant ``y``, imperfect prediction) also reported as NaN, as this
    project always has; scikit-learn's default would report 0.0 or 1.0.
    """
    y_arr, pred_arr = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    if y_arr.shape[0] < 2:
        return float("nan")  # r2_score would warn and return NaN
    with np.errstate(divide="ignore", invalid="ignore"):  # constant y: 0/0 or x/0, reported as NaN below
        value = float(r2_score(y_arr, pred_arr, force_finite=False))
    return value if math.isfinite(value) else float("nan")


@dataclass(frozen=True)
class Metric:
    """A metric by name: its function, its direction and scikit-learn's scorer for it.

    ``scoring`` is the string ``sklearn.metrics.get_scorer`` knows; scikit-learn
    scorers are "greater is better", so an error's scorer is its negative
    (``neg_mean_absolute_error``).
    """

    name: str
    function: MetricFunction
    greater_is_better: bool
    scoring: str


METRICS: dict[str, Metric] = {
    "mae": Metric("mae", mae, greater_is_better=False, scoring="neg_mean_absolute_error"),
    "rmse": Metric("rmse", rmse, greater_is_better=False, scoring="neg_root_mean_squared_error"),
    "r2": Metric("r2", r2, greater_is_better=True, scoring="r2"),
}


def get_metric(name: str) -> Metric:
    """The metric called ``name``; ``KeyError`` naming the known ones if there is none."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"metric '{name}' is not known (known: {', '.join(sorted(METRICS))})") from None


def regression_metrics(y: ArrayLike, pred: ArrayLike) -> dict[str, float]:
    """``{"mae": ..., "rmse": ...,  "r2": ...}`` of ``pred`` against ``y`` (both shape ``(n,)``)."""
    return {name: metric.function(y, pred) for name, metric in METRICS.items()}


def metric_by(groups: ArrayLike | pd.Series, y: ArrayLike, pred: ArrayLike,
              metric: MetricFunction = mae) -> dict[str, float]:
    """``metric`` within each group, keyed by the group's name as a string.

    ``groups``, ``y`` and ``pred`` have shape ``(n,)``. Groups come out in
    pandas' sorted group order; rows whose group is missing are left out
    (``DataFrame.groupby`` with its default ``dropna=True``).
    """
    frame = pd.DataFrame({"y": np.asarray(y), "pred": np.asarray(pred)})
    return {str(key): float(metric(part["y"].to_numpy(), part["pred"].to_numpy()))
            for key, part in frame.groupby(np.asarray(groups), sort=True)}


def mae_by(groups: ArrayLike | pd.Series, y: ArrayLike, pred: ArrayLike) -> dict[str, float]:
    """Mean absolute error within each group (``metric_by`` with ``mae``), in the target's unit."""
    return metric_by(groups, y, pred, mae)
