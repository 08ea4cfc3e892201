"""Logging a training run to MLflow: parameters, metrics, plots, the model.

Works on whatever MLflow run is active (the ZenML MLflow experiment tracker
starts one per pipeline run); the tracking server is the stack's business.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import pandas as pd

from collabops.exchange.environment import pinned_requirements
from collabops.exchange.trusted_types import TRUSTED_TYPES


def log_training_run(
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    images: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    model: Any,
    input_example: pd.DataFrame,
) -> str:
    """Log everything about one training run; return the MLflow run id."""
    import mlflow
    from mlflow.models import infer_signature

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: log_training_run must run inside a tracked step")
    mlflow.log_params({k: _param(v) for k, v in params.items()})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
    for name, image in images.items():
        mlflow.log_image(image, artifact_file=f"plots/{name}.png")
    for name, table in tables.items():
        mlflow.log_table(table, artifact_file=f"tables/{name}.json")
    with warnings.catch_warnings():
        # The contract's int columns are never null, so MLflow's hint about them does not apply.
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(input_example, model.predict(input_example))
    mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=input_example.head(3),
        serialization_format="skops",
        skops_trusted_types=TRUSTED_TYPES,
        pip_requirements=pinned_requirements(),
    )
    return run.info.run_id


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."
