"""Step that packages a ZenML model version as a signed model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple

from typing_extensions import Annotated
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.types import MarkdownString

from collabops.exchange import bundle as bundles
from collabops.data.contract import contract_from_dict
from collabops.exchange.model_bundle import write_model_bundle
from collabops.exchange.model_card import render
from collabops.data.profile import profile
from collabops.exchange.signing import load_signer

REFERENCE_SAMPLE_ROWS = 5000


@step(enable_cache=False)
def write_model_bundle_step(model_name: str, version: str, out_dir: str, partner: str, owners: dict,
                            private_key: Optional[str], code_revision: Optional[str]) -> Tuple[
    Annotated[Path, "model_bundle"], Annotated[dict, "bundle_manifest"], Annotated[MarkdownString, "model_card"]
]:
    """Take the model version's artifacts from its training run and write the signed bundle."""
    client = Client()
    chosen = client.get_model_version(model_name, int(version) if version.isdigit() else version)
    run = client.get_pipeline_run(next(iter(chosen.pipeline_run_ids.values())))
    model = chosen.get_model_artifact("trained_model").load()
    contract = contract_from_dict(run.steps["load_data_contract"].outputs["data_contract"][0].load())
    evaluation = run.steps["evaluate_models"].outputs
    metrics = {"test": evaluation["test_metrics"][0].load(), "baseline_test": evaluation["baseline_test_metrics"][0].load()}
    train = run.steps["split_data"].outputs["train_data"][0].load()
    periods = (run.steps["split_data"].run_metadata or {}).get("periods", {})
    reference = train.drop(columns=contract.personal_columns)
    sample = reference.sample(n=min(REFERENCE_SAMPLE_ROWS, len(reference)), random_state=0)
    best = (chosen.run_metadata or {}).get("best_params")
    context = get_step_context()
    producer = bundles.Producer(partner=partner, stack=client.active_stack_model.name,
                                zenml_run_id=str(context.pipeline_run.id), code_revision=code_revision)
    card = render(model_name, str(chosen.name), contract.name, str((chosen.run_metadata or {}).get("task", "")),
                  metrics["test"], metrics["baseline_test"], periods, producer.__dict__,
                  {f"owner ({p})": o for p, o in owners.items()}, best)
    path, manifest = write_model_bundle(
        model, contract, metrics, profile(train, contract), sample, card, producer,
        load_signer(partner, Path(private_key) if private_key else None), Path(out_dir),
        extra={"model": {"name": model_name, "version": str(chosen.name), "stage": str(chosen.stage),
                         "training_run_id": str(run.id),
                         "training_data_bundle_id": _training_data_bundle(run),
                         "mlflow_run_id": (chosen.run_metadata or {}).get("mlflow_run_id")}},
    )
    log_metadata(metadata={"bundle_id": manifest["bundle_id"], "bundle_path": str(path),
                           "model_version": str(chosen.name)})
    return path, manifest, MarkdownString(card)


def _training_data_bundle(run: Any) -> Optional[str]:
    """The data bundle the model was trained on, so the industry can find the holdout kept back from it."""
    loaded = run.steps.get("load_data_bundle")
    return str((loaded.run_metadata or {}).get("bundle_id")) if loaded is not None else None
