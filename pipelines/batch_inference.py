"""Industry: score a file with a model version, every row stamped with version and bundle id."""

from __future__ import annotations

from zenml import pipeline

from orchestration import names
from steps.data import load_data_contract
from steps.inference import score_batch


@pipeline(name=names.BATCH_INFERENCE, enable_cache=False)
def batch_inference_pipeline(contract_path: str, model_name: str, version: str, data_path: str,
                             out_path: str) -> None:
    """Validate in chunks against the contract's feature columns and write the predictions atomically."""
    score_batch(model_name, version, load_data_contract(contract_path), data_path, out_path)
