"""Step that scores a file with a model version of this partner's store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from zenml import log_metadata, step
from zenml.client import Client

from collabops.data.contract import contract_from_dict
from collabops.production.scoring import score_file
from orchestration import names


@step(enable_cache=False)
def score_batch(model_name: str, version: str, contract: dict, data_path: str, out_path: str) -> Annotated[
    dict, names.SCORING_SUMMARY
]:
    """Validate and score ``data_path`` in chunks; the output appears only when complete."""
    chosen = Client().get_model_version(model_name, int(version) if version.isdigit() else version)
    model = chosen.get_model_artifact(names.TRAINED_MODEL).load()
    bundle_id = str((chosen.run_metadata or {}).get("imported_bundle_id", "local"))
    rows = score_file(model, contract_from_dict(contract), Path(data_path), Path(out_path),
                      model_version=str(chosen.name), bundle_id=bundle_id)
    summary = {"rows": rows, "model_version": str(chosen.name), "bundle_id": bundle_id, "output": out_path}
    log_metadata(metadata=summary)
    return summary
