"""Scoring a fitted model on the test period, overall and per segment."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from collabops.data.contract import DataContract
from collabops.training.tasks import Task


def evaluate(task: Task, contract: DataContract, model: Any, test: pd.DataFrame) -> dict[str, Any]:
    """Metrics of ``model`` on ``test``: ``{"overall": {...}, "by_segment": {...}, "by_hour_band": {...}}``."""
    pred = model.predict(test[contract.feature_columns])
    return scores(task, contract, test, pred)


def scores(task: Task, contract: DataContract, test: pd.DataFrame, pred: np.ndarray) -> dict[str, Any]:
    result: dict[str, Any] = {"overall": task.score(test[contract.target].to_numpy(), pred)}
    result.update(task.segment_scores(test, contract, pred))
    result["rows"] = int(len(test))
    return result


def flatten(evaluation: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"overall": {"mae": x}, "by_segment": {"airport": y}}`` -> ``{"mae": x, "mae.by_segment.airport": y}``.

    Flat names are what MLflow metrics need.
    """
    flat: dict[str, float] = {}
    for name, value in evaluation.get("overall", {}).items():
        flat[f"{prefix}{name}"] = float(value)
    for group in ("by_segment", "by_hour_band"):
        for key, value in evaluation.get(group, {}).items():
            flat[f"{prefix}mae.{group}.{key}"] = float(value)
    return flat


def feature_importance(task: Task, contract: DataContract, model: Any, test: pd.DataFrame,
                       sample: int = 5000, seed: int = 0) -> pd.Series:
    """Permutation importance of each input column on a sample of the test period.

    Measured on the columns of the contract (not the encoded features), so it
    reads in the partners' own vocabulary.
    """
    from sklearn.inspection import permutation_importance

    rows = test.sample(n=min(sample, len(test)), random_state=seed)
    scoring = "neg_mean_absolute_error" if task.name == "regression" else None
    result = permutation_importance(
        model, rows[contract.feature_columns], rows[contract.target],
        scoring=scoring, n_repeats=3, random_state=seed, n_jobs=1,
    )
    return pd.Series(result.importances_mean, index=contract.feature_columns).sort_values(ascending=False)
