"""The university's training pipeline.

load -> validate against the contract -> time split -> baseline and searched
model -> evaluate on the test period -> log to MLflow -> model version with
its evidence, promoted to ``staging`` only if it wins (champion/challenger).
"""

from __future__ import annotations

from zenml import Model, pipeline
from zenml.config import CachePolicy

from orchestration import names
from steps.data import generate_dataset, load_data_contract, load_dataset, split_data, validate_data
from steps.evaluation import evaluate_models
from steps.exchange import load_data_bundle
from steps.registry import DEFAULT_MIN_IMPROVEMENT, promote_model
from steps.tracking import log_experiment
from steps.training import train_baseline, train_model

LIBRARY_CACHE_POLICY = CachePolicy(cache_func="collabops.exchange.environment.library_cache_key")
"""ZenML's default key (step code, parameters, inputs) plus the digest of the ``collabops`` library and the model
packages' versions: the steps call the library (features, rules, baseline), so an edit there retrains."""


@pipeline(name=names.TRAINING, enable_cache=True, cache_policy=LIBRARY_CACHE_POLICY)
def training_pipeline(
    contract_path: str,
    task: str,
    model_name: str,
    split: dict,
    search: dict,
    model_description: str = "",
    generator: dict | None = None,
    data_path: str | None = None,
    data_bundle: str | None = None,
    data_bundle_manifest: dict | None = None,
    data_bundle_signer: str | None = None,
    experiment_tracker: str | None = None,
    code_revision: str | None = None,
    min_improvement: float = DEFAULT_MIN_IMPROVEMENT,
    max_days_ahead: float | None = None,
) -> None:
    """Train on a ``data_bundle`` (a folder the command verified), a ``data_path`` or the example data.

    The model version is attached only to the steps after validation and the
    split, so bad data never creates a model version. ``min_improvement`` is
    the project's ``promotion.min_improvement`` (the champion/challenger
    margin, a share of the champion's score); ``max_days_ahead`` the project's
    ``data.max_days_ahead`` (None: its default).
    """
    source = data_bundle or data_path or "example data (generator)"
    contract = load_data_contract(contract_path)
    if data_bundle:
        raw = load_data_bundle(data_bundle, data_bundle_manifest or {}, data_bundle_signer or "")
    elif data_path:
        raw = load_dataset(data_path, contract)
    else:
        raw = generate_dataset(generator or {})
    horizon = {} if max_days_ahead is None else {"max_days_ahead": max_days_ahead}
    data = validate_data(raw, contract, source, **horizon)
    train, validation, test = split_data(data, contract, split, source)

    model = Model(name=model_name, description=model_description or None)
    baseline = train_baseline.with_options(model=model)(train, validation, contract, task)
    fitted, trials, best_params = train_model.with_options(model=model)(train, validation, contract, task, search)
    test_metrics, baseline_metrics, week_plot, hour_plot, importance_plot = evaluate_models.with_options(model=model)(
        fitted, baseline, test, contract, task
    )
    run_id = None
    if experiment_tracker:
        run_id = log_experiment.with_options(  # one MLflow experiment per model: projects side by side stay apart
            model=model, experiment_tracker=experiment_tracker,
            settings={"experiment_tracker": {"experiment_name": model_name}})(
            fitted, test, contract, best_params, trials, test_metrics, baseline_metrics,
            week_plot, hour_plot, importance_plot, source, model_name,
        )
    promote_model.with_options(model=model)(
        fitted, train, validation, test, contract, task, best_params, test_metrics, baseline_metrics, run_id, source,
        code_revision, min_improvement,
    )
