"""Step that records the model version's evidence and applies the promotion rule."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ModelStages

from collabops.data.contract import contract_from_dict
from collabops.training.evaluation import evaluate
from collabops.training.promotion import decide
from collabops.training.tasks import get_task
from orchestration import names

logger = logging.getLogger(__name__)
STAGE = ModelStages.STAGING


@step(enable_cache=False)
def promote_model(
    model: Pipeline,
    test: pd.DataFrame,
    contract: dict,
    task: str,
    best_params: dict,
    test_metrics: dict,
    baseline_test_metrics: dict,
    mlflow_run_id: str | None,
    data_source: str,
    code_revision: str | None,
) -> Annotated[dict, names.PROMOTION_DECISION]:
    """Champion/challenger against the baseline and the current staging version.

    Never cached: the champion may have changed since the last run. The
    current staging model is re-scored on this run's test period, so the
    comparison is like for like.
    """
    spec, kind = contract_from_dict(contract), get_task(task)
    version = get_step_context().model_version
    metric = kind.primary_metric
    champion_score, champion_name, champion_note = _champion_score(version.model.name, version.id, kind, spec, test)
    decision = decide(kind, test_metrics["overall"][metric], baseline_test_metrics["overall"][metric],
                      champion_score, champion_name)
    logger.info("model version %s: %s", version.name, decision.reason)
    metadata: dict[str, Any] = {
        "test_metrics": test_metrics,
        "baseline_test_metrics": baseline_test_metrics,
        "best_params": best_params,
        "promotion": {**decision.as_metadata(), **({"champion_note": champion_note} if champion_note else {})},
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


def _champion_score(model_name: str, own_id: Any, kind: Any, spec: Any,
                    test: pd.DataFrame) -> tuple[float | None, str | None, str]:
    """Score of the current staging version on ``test`` (None if there is none)."""
    try:
        champion = Client().get_model_version(model_name, STAGE)
    except KeyError:
        return None, None, ""
    if champion.id == own_id:
        return None, None, ""
    try:
        champion_model = champion.get_model_artifact(names.TRAINED_MODEL).load()
        score = evaluate(kind, spec, champion_model, test)["overall"][kind.primary_metric]
        return float(score), str(champion.name), ""
    except Exception as exc:  # noqa: BLE001 - the old model may not read this contract's columns
        recorded = (champion.run_metadata or {}).get("test_metrics", {})
        score = recorded.get("overall", {}).get(kind.primary_metric) if isinstance(recorded, dict) else None
        note = (f"staging version {champion.name} could not be re-scored on this test period ({exc}); "
                "used its recorded score")
        logger.warning(note)
        return (None if score is None else float(score)), str(champion.name), note
