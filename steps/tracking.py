"""Step that records the training run in the stack's MLflow experiment tracker."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from PIL.Image import Image
from sklearn.pipeline import Pipeline
from zenml import log_metadata, step

from collabops.data.contract import contract_from_dict
from collabops.training.evaluation import flatten
from collabops.training.tracking import log_training_run
from orchestration import names


@step
def log_experiment(
    model: Pipeline,
    test: pd.DataFrame,
    contract: dict,
    best_params: dict,
    search_trials: pd.DataFrame,
    test_metrics: dict,
    baseline_test_metrics: dict,
    forecast_week_plot: Image,
    error_by_hour_plot: Image,
    feature_importance_plot: Image,
    data_source: str,
    model_name: str,
) -> Annotated[str, names.MLFLOW_RUN_ID]:
    """Log params, metrics (model and baseline), plots and the model with its signature.

    The pipeline attaches the stack's experiment tracker to this step, which
    opens the MLflow run that everything here lands in, in the experiment
    named after ``model_name``. ``model_name`` is a parameter (logged too) so
    that ZenML's cache never answers one model's run with another model's
    MLflow run: the cache key does not include the step's settings.
    """
    spec = contract_from_dict(contract)
    params: dict[str, Any] = {**best_params, "data_source": data_source, "model_name": model_name,
                              "contract": spec.name, "contract_digest": spec.digest(),
                              "test_rows": test_metrics.get("rows")}
    metrics = {**flatten(test_metrics, prefix="test_"), **flatten(baseline_test_metrics, prefix="baseline_test_")}
    run_id = log_training_run(
        params=params,
        metrics=metrics,
        images={"forecast_week": forecast_week_plot, "error_by_hour": error_by_hour_plot,
                "feature_importance": feature_importance_plot},
        tables={"search_trials": search_trials},
        model=model,
        input_example=test[spec.feature_columns].head(200),
    )
    log_metadata(metadata={"mlflow_run_id": run_id})
    return run_id
