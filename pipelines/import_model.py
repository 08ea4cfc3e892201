"""Industry: register a model bundle that ``run.py import-model`` has verified as a new model version."""

from __future__ import annotations

from zenml import Model, pipeline

from orchestration import names
from steps.exchange import register_imported_model


@pipeline(name=names.IMPORT_MODEL, enable_cache=False)
def import_model_pipeline(bundle_dir: str, manifest: dict, signer: str, model_name: str,
                          model_description: str = "") -> None:
    """The verified bundle becomes a model version with the producer's provenance (verified before the run)."""
    model = Model(name=model_name, description=model_description or None)
    register_imported_model.with_options(model=model)(bundle_dir, manifest, signer)
