"""Industry: export a signed, pseudonymised data bundle, keeping an acceptance holdout on this side."""

from __future__ import annotations

from zenml import pipeline

from orchestration import names
from steps.data import load_data_contract, load_dataset, validate_data
from steps.exchange import hold_out_acceptance, profile_data, pseudonymise_personal_data, write_data_bundle_step


@pipeline(name=names.EXPORT_DATA, enable_cache=False)
def export_data_pipeline(contract_path: str, data_path: str, out_dir: str, partner: str, bundle_id: str,
                         holdout_fraction: float, key_env: str, key_file: str, private_key: str | None = None,
                         code_revision: str | None = None, max_days_ahead: float | None = None,
                         retraining_request: dict | None = None) -> None:
    """Validate -> keep an acceptance holdout (tagged with ``bundle_id``) -> pseudonymise -> profile -> sign.

    ``max_days_ahead``: the project's ``data.max_days_ahead`` (None: its default).
    ``retraining_request``: the monitoring's request for a new model (shape
    ``collabops.exchange.bundle.RetrainingRequest``), written into the signed
    manifest; None for an ordinary export.
    """
    contract = load_data_contract(contract_path)
    horizon = {} if max_days_ahead is None else {"max_days_ahead": max_days_ahead}
    data = validate_data(load_dataset(data_path, contract), contract, data_path, **horizon)
    exportable, _holdout = hold_out_acceptance(data, contract, holdout_fraction, bundle_id)
    pseudonymised = pseudonymise_personal_data(exportable, contract, key_env, key_file)
    data_profile = profile_data(pseudonymised, contract)
    write_data_bundle_step(pseudonymised, contract, data_profile, out_dir, partner, bundle_id, private_key,
                           code_revision, retraining_request)
