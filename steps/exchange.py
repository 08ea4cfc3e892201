"""Steps at the partner boundary: writing, verifying and reading bundles.

Keys never become parameters or artifacts: steps receive the path or the
environment variable to read them from, on the machine that runs them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional, Tuple

import pandas as pd
from sklearn.pipeline import Pipeline
from typing_extensions import Annotated
from zenml import ArtifactConfig, get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ArtifactType
from zenml.types import MarkdownString

from collabops.exchange import bundle as bundles
from collabops.data.contract import contract_from_dict
from collabops.exchange.data_bundle import read_data, write_data_bundle
from collabops.exchange.model_bundle import CARD_FILE, load_model, read_metrics
from collabops.data.profile import profile
from collabops.exchange.pseudonymise import load_key, pseudonymise
from collabops.exchange.signing import load_signer, trusted_keys
from collabops.data.split import hold_out_latest


def _producer(partner: str, code_revision: Optional[str]) -> bundles.Producer:
    context = get_step_context()
    return bundles.Producer(partner=partner, stack=Client().active_stack_model.name,
                            zenml_run_id=str(context.pipeline_run.id), code_revision=code_revision)


@step
def hold_out_acceptance(data: pd.DataFrame, contract: dict, fraction: float) -> Tuple[
    Annotated[pd.DataFrame, "exportable_data"], Annotated[pd.DataFrame, "acceptance_holdout"]
]:
    """Keep the latest period on this side: the acceptance gate's data, never exported."""
    spec = contract_from_dict(contract)
    rest, holdout = hold_out_latest(data, spec.time_column, fraction)
    log_metadata(metadata={"holdout_rows": len(holdout), "holdout_start": str(holdout[spec.time_column].min()),
                           "exported_rows": len(rest)})
    return rest, holdout


@step(enable_cache=False)
def pseudonymise_personal_data(data: pd.DataFrame, contract: dict, key_env: str, key_file: str) -> Annotated[
    pd.DataFrame, "pseudonymised_data"
]:
    """Replace every personal column by keyed hashes (the key is read here, never stored)."""
    spec = contract_from_dict(contract)
    out = pseudonymise(data, spec.personal_columns, load_key(key_env, Path(key_file).expanduser()))
    log_metadata(metadata={"pseudonymised_columns": spec.personal_columns})
    return out


@step
def profile_data(data: pd.DataFrame, contract: dict) -> Annotated[dict, "data_profile"]:
    return profile(data, contract_from_dict(contract))


@step(enable_cache=False)
def write_data_bundle_step(data: pd.DataFrame, contract: dict, data_profile: dict, out_dir: str, partner: str,
                           private_key: Optional[str], code_revision: Optional[str]) -> Tuple[
    Annotated[Path, "data_bundle"], Annotated[dict, "bundle_manifest"]
]:
    """Write and sign the data bundle into the exchange folder; it is also kept as this run's artifact."""
    spec = contract_from_dict(contract)
    signer = load_signer(partner, Path(private_key) if private_key else None)
    path, manifest = write_data_bundle(data, spec, data_profile, _producer(partner, code_revision), signer,
                                       Path(out_dir))
    log_metadata(metadata={"bundle_id": manifest["bundle_id"], "bundle_path": str(path)})
    return path, manifest


@step(enable_cache=False)
def load_data_bundle(path: str, contract: dict, keys_dir: str, partner: str) -> Annotated[pd.DataFrame, "raw_data"]:
    """Verify a data bundle against the other partners' keys and our contract, then read its data."""
    spec = contract_from_dict(contract)
    with bundles.open_bundle(Path(path), trusted_keys(Path(keys_dir), exclude=[partner]), kind="data",
                             contract=spec) as verified:
        frame = read_data(verified)
        log_metadata(metadata={"bundle_id": verified.bundle_id, "producer": verified.manifest["producer"],
                               "rows": len(frame)})
    return frame


@step(enable_cache=False)
def verify_model_bundle(path: str, contract: dict, keys_dir: str, partner: str) -> Tuple[
    Annotated[Path, "verified_model_bundle"], Annotated[dict, "bundle_manifest"], Annotated[MarkdownString, "model_card"]
]:
    """Verify a model bundle; only a verified copy enters this partner's artifact store."""
    spec = contract_from_dict(contract)
    keys = trusted_keys(Path(keys_dir), exclude=[partner])
    with bundles.open_bundle(Path(path), keys, kind="model", contract=spec) as verified:
        staging = Path(tempfile.mkdtemp(prefix="collabops-verified-")) / "bundle"
        shutil.copytree(verified.root, staging)
        card = (verified.root / CARD_FILE).read_text(encoding="utf-8")
        log_metadata(metadata={"bundle_id": verified.bundle_id, "producer": verified.manifest["producer"]})
        return staging, verified.manifest, MarkdownString(card)


@step(enable_cache=False)
def register_imported_model(verified_model_bundle: Path, bundle_manifest: dict, contract: dict, keys_dir: str,
                            partner: str) -> Annotated[
    Pipeline, ArtifactConfig(name="trained_model", artifact_type=ArtifactType.MODEL)
]:
    """Load the model (trusted types only) into a new model version carrying the producer's provenance."""
    spec = contract_from_dict(contract)
    keys = trusted_keys(Path(keys_dir), exclude=[partner])
    verified = bundles.verify(verified_model_bundle, keys, kind="model", contract=spec)
    model = load_model(verified)
    manifest = verified.manifest
    metadata: dict[str, Any] = {
        "imported_bundle_id": manifest["bundle_id"],
        "producer": manifest["producer"],
        "producer_model": manifest.get("model", {}),
        "producer_metrics": read_metrics(verified),
        "contract_digest": manifest["contract_digest"],
        "bundle_created_at": manifest["created_at"],
    }
    log_metadata(metadata=metadata, model_version_id=get_step_context().model_version.id)
    return model
