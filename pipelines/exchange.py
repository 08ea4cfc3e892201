"""The pipelines at the partner boundary: export data, hand over a model, import a model, score with it."""

from __future__ import annotations

from typing import Optional

from zenml import Model, pipeline

from steps.data import load_data_contract, load_dataset, validate_data
from steps.exchange import (
    hold_out_acceptance,
    profile_data,
    pseudonymise_personal_data,
    register_imported_model,
    verify_model_bundle,
    write_data_bundle_step,
)
from steps.handover import write_model_bundle_step
from steps.inference import score_batch


@pipeline(name="export-data", enable_cache=False)
def export_data_pipeline(contract_path: str, data_path: str, out_dir: str, partner: str, holdout_fraction: float,
                         key_env: str, key_file: str, private_key: Optional[str] = None,
                         code_revision: Optional[str] = None) -> None:
    """Industry: validate -> keep an acceptance holdout -> pseudonymise -> profile -> signed data bundle."""
    contract = load_data_contract(contract_path)
    data = validate_data(load_dataset(data_path), contract, data_path)
    exportable, _holdout = hold_out_acceptance(data, contract, holdout_fraction)
    pseudonymised = pseudonymise_personal_data(exportable, contract, key_env, key_file)
    data_profile = profile_data(pseudonymised, contract)
    write_data_bundle_step(pseudonymised, contract, data_profile, out_dir, partner, private_key, code_revision)


@pipeline(name="handover", enable_cache=False)
def handover_pipeline(model_name: str, version: str, out_dir: str, partner: str, owners: dict,
                      private_key: Optional[str] = None, code_revision: Optional[str] = None) -> None:
    """University: package a model version with its evidence as a signed model bundle."""
    write_model_bundle_step(model_name, version, out_dir, partner, owners, private_key, code_revision)


@pipeline(name="import-model", enable_cache=False)
def import_model_pipeline(contract_path: str, bundle_path: str, model_name: str, keys_dir: str,
                          partner: str) -> None:
    """Industry: verify a model bundle, then register it as a model version with its provenance.

    The model version exists only from the step after verification on.
    """
    contract = load_data_contract(contract_path)
    verified, manifest, _card = verify_model_bundle(bundle_path, contract, keys_dir, partner)
    model = Model(name=model_name, description="Occupancy forecaster imported from a verified model bundle.")
    register_imported_model.with_options(model=model)(verified, manifest, contract, keys_dir, partner)


@pipeline(name="batch-inference", enable_cache=False)
def batch_inference_pipeline(contract_path: str, model_name: str, version: str, data_path: str,
                             out_path: str) -> None:
    """Industry: score a file with a model version, every row stamped with version and bundle id."""
    score_batch(model_name, version, load_data_contract(contract_path), data_path, out_path)
