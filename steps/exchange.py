"""Steps at the partner boundary: the export's holdout and bundle, and reading what a command verified.

Keys never become parameters or artifacts: steps receive the path or the
environment variable to read them from, on the machine that runs them.
A received bundle is verified once per command, by the command, before the
run exists (``run.py train --data-bundle``, ``run.py import-model``: every
check of ``collabops.exchange.bundle.verify``, and for a model also loading it
with the trusted types and replaying its reference predictions); these steps
read the verified folder the command hands them while it is open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import ArtifactConfig, add_tags, get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ArtifactType
from zenml.types import MarkdownString

from collabops.data.contract import contract_from_dict
from collabops.data.profile import profile
from collabops.data.split import hold_out_latest
from collabops.exchange import bundle as bundles
from collabops.exchange.data_bundle import read_data, retraining_request, write_data_bundle
from collabops.exchange.model_bundle import CARD_FILE, load_model, read_metrics
from collabops.exchange.pseudonymise import load_key, pseudonymise
from collabops.exchange.signing import load_signer
from orchestration import names


def _producer(partner: str, code_revision: str | None) -> bundles.Producer:
    context = get_step_context()
    return bundles.Producer(partner=partner, stack=Client().active_stack_model.name,
                            zenml_run_id=str(context.pipeline_run.id), code_revision=code_revision)


@step
def hold_out_acceptance(data: pd.DataFrame, contract: dict, fraction: float, bundle_id: str) -> tuple[
    Annotated[pd.DataFrame, names.EXPORTABLE_DATA], Annotated[pd.DataFrame, names.ACCEPTANCE_HOLDOUT]
]:
    """Keep the latest period on this side: the acceptance gate's data, never exported.

    The holdout is tagged ``data-bundle:<bundle_id>`` (the bundle this export
    writes), so the gate finds it from what a model version records.
    """
    spec = contract_from_dict(contract)
    rest, holdout = hold_out_latest(data, spec.time_column, fraction)
    summary = {"holdout_rows": len(holdout), "holdout_start": str(holdout[spec.time_column].min()),
               "exported_rows": len(rest), "data_bundle_id": bundle_id}
    log_metadata(metadata=summary)
    log_metadata(metadata=summary, artifact_name=names.ACCEPTANCE_HOLDOUT, infer_artifact=True)
    add_tags(tags=[names.DATA_BUNDLE_TAG.format(bundle_id=bundle_id)], artifact_name=names.ACCEPTANCE_HOLDOUT,
             infer_artifact=True)
    return rest, holdout


@step(enable_cache=False)
def pseudonymise_personal_data(data: pd.DataFrame, contract: dict, key_env: str, key_file: str) -> Annotated[
    pd.DataFrame, names.PSEUDONYMISED_DATA
]:
    """Replace every personal column by keyed hashes (the key is read here, never stored; not read at all
    when the contract has no personal column)."""
    spec = contract_from_dict(contract)
    if not spec.personal_columns:
        return data
    out = pseudonymise(data, spec.personal_columns, load_key(key_env, Path(key_file).expanduser()))
    log_metadata(metadata={"pseudonymised_columns": spec.personal_columns})
    return out


@step
def profile_data(data: pd.DataFrame, contract: dict) -> Annotated[dict, names.DATA_PROFILE]:
    return profile(data, contract_from_dict(contract))


@step(enable_cache=False)
def write_data_bundle_step(data: pd.DataFrame, contract: dict, data_profile: dict, out_dir: str, partner: str,
                           bundle_id: str, private_key: str | None, code_revision: str | None,
                           retraining_request: dict | None = None) -> tuple[
    Annotated[Path, names.DATA_BUNDLE], Annotated[dict, names.BUNDLE_MANIFEST]
]:
    """Write and sign the data bundle into the exchange folder; it is also kept as this run's artifact.

    ``retraining_request`` (the monitoring's, shape
    ``collabops.exchange.bundle.RetrainingRequest``) goes into the signed
    manifest and, as the manifest holds it, into this step's and the bundle
    artifact's metadata.
    """
    spec = contract_from_dict(contract)
    signer = load_signer(partner, Path(private_key) if private_key else None)
    path, manifest = write_data_bundle(data, spec, data_profile, _producer(partner, code_revision), signer,
                                       Path(out_dir), bundle_id=bundle_id, retraining_request=retraining_request)
    metadata: dict[str, Any] = {"bundle_id": manifest["bundle_id"], "bundle_path": str(path)}
    if manifest.get("retraining_request") is not None:
        metadata["retraining_request"] = manifest["retraining_request"]
    log_metadata(metadata=metadata)
    log_metadata(metadata=metadata, artifact_name=names.DATA_BUNDLE, infer_artifact=True)
    return path, manifest


@step(enable_cache=False)
def load_data_bundle(bundle_dir: str, manifest: dict, signer: str) -> Annotated[pd.DataFrame, names.RAW_DATA]:
    """Read the data of the bundle the command verified (``bundle_dir`` exists while the command runs).

    The run's and the raw data's metadata record the bundle's provenance,
    with its retraining request when it carries one (``retraining_request``).
    """
    verified = bundles.VerifiedBundle(root=Path(bundle_dir), manifest=manifest, signer=signer)
    frame = read_data(verified)
    provenance: dict[str, Any] = {"bundle_id": verified.bundle_id, "producer": manifest["producer"],
                                  "rows": len(frame)}
    request = retraining_request(verified)
    if request is not None:
        provenance["retraining_request"] = request
    log_metadata(metadata=provenance)
    log_metadata(metadata=provenance, artifact_name=names.RAW_DATA, infer_artifact=True)
    return frame


@step(enable_cache=False)
def register_imported_model(bundle_dir: str, manifest: dict, signer: str) -> tuple[
    Annotated[Pipeline, ArtifactConfig(name=names.TRAINED_MODEL, artifact_type=ArtifactType.MODEL)],
    Annotated[Path, names.VERIFIED_MODEL_BUNDLE],
    Annotated[dict, names.BUNDLE_MANIFEST],
    Annotated[MarkdownString, names.MODEL_CARD],
]:
    """Load the model of the bundle the command verified (trusted types only) into a new model version.

    The command has already loaded it once and replayed its reference
    predictions, before this run existed; loading it here again is what
    stores it as the version's model artifact.

    The verified folder itself becomes an artifact of the version (the
    deployer serves from it); the version's metadata carries the producer's
    provenance. Nothing is copied to a temporary folder.
    """
    verified = bundles.VerifiedBundle(root=Path(bundle_dir), manifest=manifest, signer=signer)
    model = load_model(verified)
    metadata: dict[str, Any] = {
        names.IMPORTED_BUNDLE_ID: manifest["bundle_id"],
        "producer": manifest["producer"],
        "producer_model": manifest.get("model", {}),
        "producer_metrics": read_metrics(verified),
        "contract_digest": manifest["contract_digest"],
        "bundle_created_at": manifest["created_at"],
        "signed_by": signer,
    }
    log_metadata(metadata=metadata, model_version_id=get_step_context().model_version.id)
    card = (verified.root / CARD_FILE).read_text(encoding="utf-8")
    return model, verified.root, manifest, MarkdownString(card)
