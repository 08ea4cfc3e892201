"""Regression metrics, overall and per segment."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Parts of the day whose errors matter differently to the operator.
HOUR_BANDS = (
    ("night", 0, 6),
    ("morning", 6, 10),
    ("midday", 10, 16),
    ("evening", 16, 20),
    ("late", 20, 24),
)


def hour_band(hours: pd.Series | np.ndarray) -> np.ndarray:
    """Name of the hour band of each hour of day."""
    hours = np.asarray(hours)
    out = np.empty(hours.shape, dtype=object)
    for name, start, end in HOUR_BANDS:
        out[(hours >= start) & (hours < end)] = name
    return out


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(pred))))


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(pred)) ** 2)))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    total = np.sum((y - y.mean()) ** 2)
    if total == 0:
        return float("nan")
    return float(1.0 - np.sum((y - pred) ** 2) / total)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"mae": mae(y, pred), "rmse": rmse(y, pred), "r2": r2(y, pred)}


def mae_by(groups: np.ndarray | pd.Series, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE within each group, keyed by group name."""
    errors = pd.Series(np.abs(np.asarray(y) - np.asarray(pred)))
    return {str(k): float(v) for k, v in errors.groupby(np.asarray(groups)).mean().items()}
