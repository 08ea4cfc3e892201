"""Industry: watch the production model; on drift, send fresh data back with a signed retraining request."""

from __future__ import annotations

from zenml import pipeline

from orchestration import names
from steps.data import load_data_contract
from steps.exchange import hold_out_acceptance, profile_data, pseudonymise_personal_data, write_data_bundle_step
from steps.monitoring import collect_retraining_rows, load_monitoring_reference, monitor_period, record_monitoring


@pipeline(name=names.MONITORING, dynamic=True, enable_cache=False)
def monitoring_pipeline(contract_path: str, model_name: str, task: str, settings: dict, source: dict,
                        export: dict | None = None) -> None:
    """Reference -> the period judged (Evidently's report, the verdict) -> recorded on the production version.

    A dynamic pipeline: on ``drift``, when ``export`` is given (``{"rows_path",
    "out_dir", "partner", "bundle_id", "holdout_fraction", "key_env",
    "key_file", "private_key", "code_revision"}``), the export's steps run
    on the period's full rows and write a signed data bundle whose manifest
    carries the retraining request; its acceptance holdout is tagged with
    the bundle, as every export's is.
    """
    contract = load_data_contract(contract_path)
    reference, monitored = load_monitoring_reference(model_name, contract, task)
    _report, summary = monitor_period(reference, monitored, contract, task, settings, source)
    record_monitoring(summary)  # the verdict is kept even if an export below fails
    if export and summary.load()["verdict"] == "drift":
        rows, request = collect_retraining_rows(summary, contract, export["rows_path"])
        if "not_exported" in request.load():
            return  # the period's rows are not in the file: the command says so; the verdict is recorded
        exportable, _holdout = hold_out_acceptance(rows, contract, export["holdout_fraction"], export["bundle_id"])
        pseudonymised = pseudonymise_personal_data(exportable, contract, export["key_env"], export["key_file"])
        data_profile = profile_data(pseudonymised, contract)
        write_data_bundle_step(pseudonymised, contract, data_profile, export["out_dir"], export["partner"],
                               export["bundle_id"], export["private_key"], export["code_revision"],
                               retraining_request=request)
        record_monitoring(summary, f"{export['out_dir']}/data-{export['bundle_id']}")  # where it was written
