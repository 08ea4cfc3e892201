"""University: package a model version with its evidence as a signed model bundle."""

from __future__ import annotations

from zenml import pipeline

from orchestration import names
from steps.handover import write_model_bundle_step


@pipeline(name=names.HANDOVER, enable_cache=False)
def handover_pipeline(model_name: str, version: str, out_dir: str, partner: str, owners: dict, description: str = "",
                      private_key: str | None = None, code_revision: str | None = None) -> None:
    """The version's model, contract, metrics, reference profile and sample, model card and pins, signed."""
    write_model_bundle_step(model_name, version, out_dir, partner, owners, description, private_key, code_revision)
