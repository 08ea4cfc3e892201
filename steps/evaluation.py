"""Step that scores the model and the baseline on the test period and draws the plots."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from PIL.Image import Image
from sklearn.pipeline import Pipeline
from zenml import step

from collabops.data.contract import contract_from_dict
from collabops.training import plots
from collabops.training.evaluation import feature_importance, scores
from collabops.training.tasks import get_task
from orchestration import names


@step
def evaluate_models(
    model: Pipeline, baseline: Any, test: pd.DataFrame, contract: dict, task: str
) -> tuple[
    Annotated[dict, names.TEST_METRICS],
    Annotated[dict, names.BASELINE_TEST_METRICS],
    Annotated[Image, names.FORECAST_WEEK_PLOT],
    Annotated[Image, names.ERROR_BY_HOUR_PLOT],
    Annotated[Image, names.FEATURE_IMPORTANCE_PLOT],
]:
    """Metrics overall, per segment and per hour band, plus the plots people look at."""
    spec, kind = contract_from_dict(contract), get_task(task)
    features = test[spec.feature_columns]
    pred, baseline_pred = model.predict(features), baseline.predict(features)
    importance = feature_importance(kind, spec, model, test)
    return (
        scores(kind, spec, test, pred),
        scores(kind, spec, test, baseline_pred),
        plots.forecast_week(spec, test, pred, baseline_pred),
        plots.error_by_hour(spec, test, pred, baseline_pred, kind),
        plots.feature_importance(importance, kind.primary_metric),
    )
