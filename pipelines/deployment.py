"""Industry: take an imported model version into production, safely."""

from __future__ import annotations

from zenml import pipeline
from zenml.client import Client

from collabops.settings import DeploymentSettings
from orchestration import names
from steps.data import load_data_contract
from steps.deployment import acceptance_gate, load_candidate, promote_to_production, start_prediction_service


@pipeline(name=names.DEPLOY, enable_cache=False)
def deploy_pipeline(contract_path: str, holdout_artifact_id: str, settings: DeploymentSettings, keys_dir: str,
                    task: str = "regression", enforce_gate: bool = True) -> None:
    """Candidate -> acceptance gate on our holdout -> new service + smoke test -> production.

    The model version is the run's model (set by ``run.py deploy``), so the
    report and the decision are attached to it. The holdout is the artifact
    export-data kept back: an input of this run, shown as such in the DAG.
    """
    contract = load_data_contract(contract_path)
    holdout = Client().get_artifact_version(holdout_artifact_id)
    candidate = load_candidate(settings)
    _report, result = acceptance_gate(candidate, holdout, contract, task, settings, enforce_gate)
    deployment = start_prediction_service(candidate, result, holdout, contract, settings, keys_dir)
    promote_to_production(deployment, candidate)
