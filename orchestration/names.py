"""Pipeline, artifact and tag names: written once, used by the steps, the pipelines and this layer.

Artifact names are what the dashboard shows and what :class:`orchestration.runs.RunResult`
reads outputs by; the model version's artifacts are fetched by these names too.
"""

from __future__ import annotations

# Pipelines
TRAINING = "training"
EXPORT_DATA = "export-data"
HANDOVER = "handover"
IMPORT_MODEL = "import-model"
BATCH_INFERENCE = "batch-inference"
DEPLOY = "deploy"
MONITORING = "monitoring"

# Artifacts of the training pipeline
DATA_CONTRACT = "data_contract"
RAW_DATA = "raw_data"
VALIDATED_DATA = "validated_data"
TRAIN_DATA = "train_data"
VALIDATION_DATA = "validation_data"
TEST_DATA = "test_data"
BASELINE_MODEL = "baseline_model"
TRAINED_MODEL = "trained_model"
SEARCH_TRIALS = "search_trials"
BEST_PARAMS = "best_params"
TEST_METRICS = "test_metrics"
BASELINE_TEST_METRICS = "baseline_test_metrics"
FORECAST_WEEK_PLOT = "forecast_week_plot"
ERROR_BY_HOUR_PLOT = "error_by_hour_plot"
FEATURE_IMPORTANCE_PLOT = "feature_importance_plot"
MLFLOW_RUN_ID = "mlflow_run_id"
PROMOTION_DECISION = "promotion_decision"
DATA_PERIODS = "data_periods"
DATA_BUNDLE_SOURCE = "data_bundle_source"

# Artifacts at the partner boundary
EXPORTABLE_DATA = "exportable_data"
ACCEPTANCE_HOLDOUT = "acceptance_holdout"
PSEUDONYMISED_DATA = "pseudonymised_data"
DATA_PROFILE = "data_profile"
DATA_BUNDLE = "data_bundle"
MODEL_BUNDLE = "model_bundle"
BUNDLE_MANIFEST = "bundle_manifest"
MODEL_CARD = "model_card"
VERIFIED_MODEL_BUNDLE = "verified_model_bundle"
SCORING_SUMMARY = "scoring_summary"

# Artifacts of the deploy pipeline
CANDIDATE = "candidate"
ACCEPTANCE_REPORT = "acceptance_report"
ACCEPTANCE_RESULT = "acceptance_result"
DEPLOYMENT = "deployment"
DEPLOYMENT_RECORD = "deployment_record"

# Artifacts of the monitoring pipeline
MONITORING_REFERENCE = "monitoring_reference"
MONITORED_MODEL = "monitored_model"
DRIFT_REPORT = "drift_report"
MONITORING_SUMMARY = "monitoring_summary"
RETRAINING_ROWS = "retraining_rows"

# Tags
DATA_BUNDLE_TAG = "data-bundle:{bundle_id}"
"""On the acceptance holdout an export kept back: which data bundle it belongs to (lineage for the gate)."""
PARTNER_TAG = "partner:{partner}"

# Model version metadata keys
IMPORTED_BUNDLE_ID = "imported_bundle_id"
LATEST_IMPORTED = "latest-imported"
TRAINING_PERIOD = "training_period"
"""``{"start", "end"}``: first and last time of the rows the version's model was fitted on (train + validation)."""
MONITORING_METADATA = "monitoring"
"""The last monitoring of the version in production: verdict, when, why, the run, the log watermark."""
DEPLOYMENT_METADATA = "deployment"
"""The record of the deployment that last put the version in production, with the production history before it."""
