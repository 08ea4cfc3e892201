"""Step that records the model version's evidence and applies the promotion rule."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ModelStages

from collabops.data.contract import DataContract, contract_from_dict
from collabops.settings import PromotionSettings
from collabops.training.promotion import ChampionComparison, decide, rows_outside, training_period
from collabops.training.tasks import Task, get_task
from orchestration import names

logger = logging.getLogger(__name__)
STAGE = ModelStages.STAGING
DEFAULT_MIN_IMPROVEMENT = PromotionSettings.model_fields["min_improvement"].default


@step(enable_cache=False)
def promote_model(
    model: Pipeline,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    contract: dict,
    task: str,
    best_params: dict,
    test_metrics: dict,
    baseline_test_metrics: dict,
    mlflow_run_id: str | None,
    data_source: str,
    code_revision: str | None,
    min_improvement: float = DEFAULT_MIN_IMPROVEMENT,
) -> Annotated[dict, names.PROMOTION_DECISION]:
    """Champion/challenger against the baseline and the current staging version.

    Never cached: the champion may have changed since the last run. The
    version records its training period (the first and last time of the
    train and validation rows its model was refitted on). The current staging
    model and the candidate are both scored on the rows of this run's test
    period that the staging model did not train on (its recorded training
    period); ``min_improvement`` is ``promotion.min_improvement``, a share of
    the staging model's score.
    """
    spec, kind = contract_from_dict(contract), get_task(task)
    version = get_step_context().model_version
    metric = kind.primary_metric
    period = training_period([train, validation], spec.time_column)
    champion = _champion_comparison(version.model.name, version, kind, spec, model, test)
    decision = decide(kind, test_metrics["overall"][metric], baseline_test_metrics["overall"][metric],
                      champion, min_improvement)
    logger.info("model version %s: %s", version.name, decision.reason)
    metadata: dict[str, Any] = {
        "test_metrics": test_metrics,
        "baseline_test_metrics": baseline_test_metrics,
        "best_params": best_params,
        "promotion": decision.as_metadata(),
        names.TRAINING_PERIOD: period,
        "data_source": data_source,
        "contract": spec.name,
        "contract_digest": spec.digest(),
        "task": kind.name,
    }
    if mlflow_run_id:
        metadata["mlflow_run_id"] = mlflow_run_id
    if code_revision:
        metadata["code_revision"] = code_revision
    log_metadata(metadata=metadata, model_version_id=version.id)
    if decision.promote:
        version.set_stage(STAGE, force=True)
    return decision.as_metadata()


def _champion_comparison(model_name: str, own: Any, kind: Task, spec: DataContract, candidate: Any,
                         test: pd.DataFrame) -> ChampionComparison | None:
    """The candidate and the current staging version on the test rows that version did not train on (None: no
    staging version)."""
    try:
        champion = Client().get_model_version(model_name, STAGE)
    except KeyError:
        return None
    if champion.id == own.id:
        return None
    name = str(champion.name)
    period = (champion.run_metadata or {}).get(names.TRAINING_PERIOD)
    by_hand = (f"to promote version {own.name} anyway: `zenml model version update {model_name} {own.name} "
               "--stage staging --force`")
    if not isinstance(period, dict):
        return ChampionComparison(name, unfair=(
            "it records no training period, so the rows it was trained on are not known (it was trained before "
            f"versions recorded one); {by_hand}"))
    try:
        outside = rows_outside(test, spec.time_column, period)
    except ValueError as exc:
        return ChampionComparison(name, unfair=f"its recorded training period cannot be read ({exc}); {by_hand}")
    rows = test[outside]
    excluded = len(test) - len(rows)
    if rows.empty:
        times = pd.to_datetime(test[spec.time_column])
        return ChampionComparison(name, excluded_rows=excluded, unfair=(
            f"all {len(test):,} rows of this run's test period ({times.min()} to {times.max()}) fall inside its "
            f"training period ({period.get('start')} to {period.get('end')}), so no row is left that it did not "
            f"train on; {by_hand}"))
    y = rows[spec.target].to_numpy()
    features = rows[spec.feature_columns]
    try:
        champion_model = champion.get_model_artifact(names.TRAINED_MODEL).load()
        champion_score = float(kind.metric(y, champion_model.predict(features)))
    except Exception as exc:  # noqa: BLE001 - the old model may not read this contract's columns
        logger.warning("staging version %s could not be scored on this run's test rows: %s", name, exc)
        return ChampionComparison(name, rows=len(rows), excluded_rows=excluded, unfair=(
            f"it could not be scored on this run's test rows ({type(exc).__name__}: {exc}); {by_hand}"))
    return ChampionComparison(name, candidate=float(kind.metric(y, candidate.predict(features))),
                              champion=champion_score, rows=len(rows), excluded_rows=excluded)
