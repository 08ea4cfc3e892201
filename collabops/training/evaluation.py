"""Scoring a fitted model on the test period, overall and per segment.

Every number is in the task's terms: ``overall`` holds all of the task's
metrics (``task.score``), ``by_segment`` and ``by_hour_band`` hold its
primary metric per group (``task.segment_scores``), and ``metric`` names
that primary metric so a reader (``flatten``, the acceptance report) need
not guess.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from collabops.data.contract import DataContract
from collabops.training.tasks import Task


def evaluate(task: Task, contract: DataContract, model: Any, test: pd.DataFrame) -> dict[str, Any]:
    """Metrics of ``model`` on ``test`` (``scores`` of ``model.predict`` on the contract's feature columns)."""
    pred = model.predict(test[contract.feature_columns])
    return scores(task, contract, test, pred)


def scores(task: Task, contract: DataContract, test: pd.DataFrame, pred: np.ndarray) -> dict[str, Any]:
    """``{"overall": {...}, "by_segment": {...}, "by_hour_band": {...}, "rows": n, "metric": name}``.

    ``pred`` has shape ``(len(test),)``; values are in the target's unit
    (errors) or unitless (R²); ``metric`` is ``task.primary_metric``, the
    metric of the per-group figures.
    """
    result: dict[str, Any] = {"overall": task.score(test[contract.target].to_numpy(), pred)}
    result.update(task.segment_scores(test, contract, pred))
    result["rows"] = len(test)
    result["metric"] = task.primary_metric
    return result


# Evaluations recorded before ``scores`` named their metric: the per-group figures were MAE, the only metric then.
LEGACY_GROUP_METRIC = "mae"


def flatten(evaluation: dict[str, Any], prefix: str = "", metric: str | None = None) -> dict[str, float]:
    """``{"overall": {"mae": x}, "by_segment": {"airport": y}}`` -> ``{"mae": x, "mae.by_segment.airport": y}``.

    Flat names are what MLflow metrics need. The per-group figures are
    named after ``metric``, by default the evaluation's own ``"metric"``
    (set by ``scores``), or ``LEGACY_GROUP_METRIC`` for an evaluation
    recorded before that key existed.
    """
    flat: dict[str, float] = {}
    for name, value in evaluation.get("overall", {}).items():
        flat[f"{prefix}{name}"] = float(value)
    metric = metric or evaluation.get("metric") or LEGACY_GROUP_METRIC
    for group in ("by_segment", "by_hour_band"):
        for key, value in evaluation.get(group, {}).items():
            flat[f"{prefix}{metric}.{group}.{key}"] = float(value)
    return flat


def feature_importance(task: Task, contract: DataContract, model: Any, test: pd.DataFrame,
                       sample: int = 5000, seed: int = 0) -> pd.Series:
    """Permutation importance of each input column on a sample of the test period.

    Measured on the columns of the contract (not the encoded features), so it
    reads in the partners' own vocabulary. Each value is the mean drop of
    the task's scorer (``task.scoring``) over 3 shuffles of ``sample`` rows
    (``sklearn.inspection.permutation_importance``): for an error, how much
    it grows, in the target's unit. Returns a Series indexed by column,
    largest first.
    """
    from sklearn.inspection import permutation_importance

    rows = test.sample(n=min(sample, len(test)), random_state=seed)
    result = permutation_importance(
        model, rows[contract.feature_columns], rows[contract.target],
        scoring=task.scoring, n_repeats=3, random_state=seed, n_jobs=1,
    )
    return pd.Series(result.importances_mean, index=contract.feature_columns).sort_values(ascending=False)
