"""Industry: take an imported model version into production, safely."""

from __future__ import annotations

from zenml import pipeline
from zenml.client import Client

from collabops.settings import DeploymentSettings
from orchestration import names
from steps.data import load_data_contract
from steps.deployment import (
    DEFAULT_PREDICTION_TOLERANCE,
    acceptance_gate,
    load_candidate,
    promote_to_production,
    start_prediction_service,
)


@pipeline(name=names.DEPLOY, enable_cache=False)
def deploy_pipeline(contract_path: str, holdout_artifact_id: str, settings: DeploymentSettings, keys_dir: str,
                    task: str = "regression", enforce_gate: bool = True, training_artifact_id: str | None = None,
                    training_period: dict | None = None, training_source: str = "",
                    prediction_tolerance: float = DEFAULT_PREDICTION_TOLERANCE,
                    rolling_back_from: str | None = None) -> None:
    """Candidate -> acceptance gate on our holdout -> new service + smoke test -> production.

    The model version is the run's model (set by ``run.py deploy``), so the
    report and the decision are attached to it. The holdout is the artifact
    export-data kept back, and ``training_artifact_id`` the rows that export
    wrote into the data bundle the model was trained on (the seasonal
    baseline is fitted on them, within ``training_period``): both are inputs
    of this run, shown as such in the DAG. ``prediction_tolerance`` is the
    project's ``exchange.prediction_tolerance``, for the service's start-up
    check; ``rolling_back_from`` names the production version a rollback
    leaves.
    """
    contract = load_data_contract(contract_path)
    client = Client()
    holdout = client.get_artifact_version(holdout_artifact_id)
    training = client.get_artifact_version(training_artifact_id) if training_artifact_id else None
    candidate = load_candidate(settings)
    _report, result = acceptance_gate(candidate, holdout, training, contract, task, settings, enforce_gate,
                                      training_period, training_source)
    deployment = start_prediction_service(candidate, result, holdout, contract, settings, keys_dir,
                                          prediction_tolerance)
    promote_to_production(deployment, candidate, rolling_back_from)
