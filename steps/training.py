"""Steps that fit models: the baseline and the searched scikit-learn pipeline."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType

from collabops.data.contract import contract_from_dict
from collabops.training.search import SearchSettings, search
from collabops.training.tasks import get_task
from orchestration import names


@step
def train_baseline(train: pd.DataFrame, validation: pd.DataFrame, contract: dict, task: str) -> Annotated[
    Any, names.BASELINE_MODEL
]:
    """Fit the naive seasonal baseline on the same data the model gets."""
    spec = contract_from_dict(contract)
    both = pd.concat([train, validation], ignore_index=True)
    return get_task(task).make_baseline(spec).fit(both[spec.feature_columns], both[spec.target])


@step
def train_model(
    train: pd.DataFrame, validation: pd.DataFrame, contract: dict, task: str, search_settings: dict
) -> tuple[
    Annotated[Pipeline, ArtifactConfig(name=names.TRAINED_MODEL, artifact_type=ArtifactType.MODEL)],
    Annotated[pd.DataFrame, names.SEARCH_TRIALS],
    Annotated[dict, names.BEST_PARAMS],
]:
    """Search the configured grid on the validation period; refit the best on train + validation."""
    result = search(get_task(task), contract_from_dict(contract), train, validation,
                    SearchSettings.from_dict(search_settings))
    log_metadata(metadata={"best_params": result.best_params, "candidates": len(result.trials)})
    return result.model, result.trials, result.best_params
