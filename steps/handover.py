"""Step that packages a ZenML model version as a signed model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.types import MarkdownString

from collabops.data.contract import contract_from_dict
from collabops.data.profile import profile
from collabops.exchange import bundle as bundles
from collabops.exchange.model_bundle import check_training_code_reproduced, write_model_bundle
from collabops.exchange.model_card import render
from collabops.exchange.signing import load_signer
from collabops.training.tasks import get_task
from orchestration import names
from orchestration.runs import RunResult

REFERENCE_SAMPLE_ROWS = 5000
"""Rows of the training data whose predictions the receiver replays (the model bound to its code)."""
MONITORING_REFERENCE_ROWS = 200_000
"""At most this many of the rows the model was developed on travel as the monitoring reference (a seeded
sample when there are more; in time order)."""


def task_of(metadata: dict) -> str:
    return str(metadata.get("task", "regression"))


@step(enable_cache=False)
def write_model_bundle_step(model_name: str, version: str, out_dir: str, partner: str, owners: dict,
                            description: str, private_key: str | None, code_revision: str | None) -> tuple[
    Annotated[Path, names.MODEL_BUNDLE], Annotated[dict, names.BUNDLE_MANIFEST], Annotated[MarkdownString,
                                                                                           names.MODEL_CARD]
]:
    """Take the model version's artifacts from its training run (by artifact name) and write the signed bundle."""
    client = Client()
    chosen = client.get_model_version(model_name, int(version) if version.isdigit() else version)
    metadata = dict(chosen.run_metadata or {})
    training = RunResult.of(next(iter(chosen.pipeline_run_ids.values())))
    model = chosen.get_model_artifact(names.TRAINED_MODEL).load()
    contract = contract_from_dict(training.output(names.DATA_CONTRACT))
    metrics = {"test": training.output(names.TEST_METRICS),
               "baseline_test": training.output(names.BASELINE_TEST_METRICS)}
    train = training.output(names.TRAIN_DATA)
    check_training_code_reproduced(model, contract, get_task(task_of(metadata)), training.output(names.TEST_DATA),
                                   metrics["test"], str(chosen.name), code_revision)
    periods = training.metadata(names.TRAIN_DATA).get("periods", {})
    reference = train.drop(columns=contract.personal_columns)
    sample = reference.sample(n=min(REFERENCE_SAMPLE_ROWS, len(reference)), random_state=0)
    developed_on = pd.concat([train, training.output(names.VALIDATION_DATA), training.output(names.TEST_DATA)],
                             ignore_index=True).drop(columns=contract.personal_columns)
    if len(developed_on) > MONITORING_REFERENCE_ROWS:
        developed_on = developed_on.sample(n=MONITORING_REFERENCE_ROWS, random_state=0).sort_index()
    trained_on = training.metadata(names.RAW_DATA).get("bundle_id")
    context = get_step_context()
    producer = bundles.Producer(partner=partner, stack=client.active_stack_model.name,
                                zenml_run_id=str(context.pipeline_run.id), code_revision=code_revision)
    task = task_of(metadata)
    card = render(model_name, str(chosen.name), description, contract, task, metrics["test"], metrics["baseline_test"],
                  periods, producer.__dict__, {f"owner ({p})": o for p, o in owners.items()},
                  metadata.get("best_params"), primary_metric=get_task(task).primary_metric)
    path, manifest = write_model_bundle(
        model, contract, metrics, profile(train, contract), sample, card, producer,
        load_signer(partner, Path(private_key) if private_key else None), Path(out_dir),
        extra={"model": {"name": model_name, "version": str(chosen.name), "stage": str(chosen.stage),
                         "training_run_id": training.id,
                         "training_data_bundle_id": str(trained_on) if trained_on else None,
                         "mlflow_run_id": metadata.get("mlflow_run_id"),
                         "training_period": metadata.get(names.TRAINING_PERIOD)}},
        monitoring_reference=developed_on.reset_index(drop=True),
    )
    summary = {"bundle_id": manifest["bundle_id"], "bundle_path": str(path), "model_version": str(chosen.name)}
    log_metadata(metadata=summary)
    log_metadata(metadata=summary, artifact_name=names.MODEL_BUNDLE, infer_artifact=True)
    return path, manifest, MarkdownString(card)
