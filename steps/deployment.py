"""Steps of the deployment pipeline: candidate -> acceptance gate -> service -> smoke test -> production.

Order matters for safety: nothing that serves changes before the gate has
passed and the new service has answered the smoke test; the old service is
retired only after the new version is in the ``production`` stage.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.types import MarkdownString

from collabops.data.contract import contract_from_dict
from collabops.exchange.bundle import safe_extract
from collabops.production.acceptance import AcceptanceReport, gate
from collabops.production.deployment import DeploymentError, check_deployable, smoke_test
from collabops.settings import DeploymentSettings
from collabops.training.evaluation import evaluate
from collabops.training.tasks import get_task
from components.model_deployer import active_deployer
from orchestration import names

logger = logging.getLogger(__name__)


def _version() -> Any:
    return get_step_context().model_version


@step(enable_cache=False)
def load_candidate(settings: DeploymentSettings) -> Annotated[dict, names.CANDIDATE]:
    """The model version to deploy, with its provenance; refuses unapproved or never-imported versions."""
    version = _version()
    metadata = dict(version.run_metadata or {})
    name = str(version.name)
    approval = check_deployable(metadata, name, settings.require_approval)
    candidate = {"model_name": version.model.name, "version": name, "version_id": str(version.id),
                 "bundle_id": str(metadata["imported_bundle_id"]), "producer": metadata.get("producer", {}),
                 "university_metrics": (metadata.get("producer_metrics") or {}).get("test", {}),
                 "approval": approval}
    log_metadata(metadata={"candidate_version": name, "bundle_id": candidate["bundle_id"]})
    return candidate


@step(enable_cache=False)
def acceptance_gate(candidate: dict, acceptance_holdout: pd.DataFrame, contract: dict, task: str,
                    settings: DeploymentSettings, enforce: bool = True) -> tuple[
    Annotated[MarkdownString, names.ACCEPTANCE_REPORT], Annotated[dict, names.ACCEPTANCE_RESULT]
]:
    """Score the candidate and the current production model on our holdout and judge by the config's thresholds.

    The verdict is returned, not raised, so the report is stored and shown
    in the dashboard even when the gate refuses.
    """
    spec, kind = contract_from_dict(contract), get_task(task)
    acceptance = settings.acceptance
    model = _version().get_model_artifact(names.TRAINED_MODEL).load()
    scores = evaluate(kind, spec, model, acceptance_holdout)
    production, production_version = _production_scores(candidate, kind, spec, acceptance_holdout)
    report = gate(scores, acceptance, acceptance.metric, production=production,
                  university=candidate.get("university_metrics") or None, task=kind)
    if not enforce:
        report = AcceptanceReport(passed=True, reasons=["gate not applied: rollback to a version that served in "
                                                        "production before", *report.reasons],
                                  metric=report.metric, candidate=report.candidate, production=report.production,
                                  university=report.university, thresholds=report.thresholds,
                                  failures=[])
    result = {**report.as_metadata(), "production_version": production_version, "holdout_rows": len(acceptance_holdout),
              "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    log_metadata(metadata={"acceptance": result}, model_version_id=_version().id)
    log_metadata(metadata={"passed": report.passed, "reasons": report.reasons})
    heading = (f"Model version {candidate['version']} (bundle {candidate['bundle_id']}) on {len(acceptance_holdout):,} "
               f"holdout rows; production: {'version ' + production_version if production_version else 'none'}\n\n")
    return MarkdownString(heading + report.markdown()), result


def _production_scores(candidate: dict, kind: Any, spec: Any, holdout: pd.DataFrame) -> tuple[dict | None, str | None]:
    try:
        current = Client().get_model_version(candidate["model_name"], ModelStages.PRODUCTION)
    except KeyError:
        return None, None
    if str(current.id) == candidate["version_id"]:
        return None, None
    model = current.get_model_artifact(names.TRAINED_MODEL).load()
    return evaluate(kind, spec, model, holdout), str(current.name)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client sends them: ISO timestamps, nulls as null."""
    out = frame.astype(object).where(frame.notna(), None)
    return [{k: (v.isoformat() if isinstance(v, pd.Timestamp) else v.item() if isinstance(v, np.generic) else v)
             for k, v in row.items()} for row in out.to_dict(orient="records")]


@step(enable_cache=False)
def start_prediction_service(candidate: dict, acceptance_result: dict, acceptance_holdout: pd.DataFrame,
                             contract: dict, settings: DeploymentSettings, keys_dir: str) -> Annotated[
                                 dict, names.DEPLOYMENT]:
    """Start the candidate's service beside the running one and smoke-test it; on failure stop it again."""
    if not acceptance_result["passed"]:
        failures = acceptance_result["failures"]
        shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more (see the acceptance report)"
                                           if len(failures) > 3 else "")
        raise DeploymentError(f"acceptance gate refused model version {candidate['version']}: {shown}. "
                              "Production is unchanged.")
    from components.prediction_server import PredictionServerConfig

    spec = contract_from_dict(contract)
    deployer = active_deployer()
    bundle_dir = _install_bundle(deployer, candidate)
    context = get_step_context()
    config = PredictionServerConfig(
        name=f"{candidate['model_name']}-v{candidate['version']}", model_name=candidate["model_name"],
        model_version=candidate["version"], pipeline_name=context.pipeline.name,
        pipeline_step_name=context.step_run.name, deployment_run_id=str(context.pipeline_run.id),
        bundle_dir=str(bundle_dir), keys_dir=keys_dir, bundle_id=candidate["bundle_id"],
        producer=candidate.get("producer") or {}, log_dir=deployer.inference_log_dir(candidate["model_name"]),
        serving=settings.serving)
    service = deployer.start_new_server(config)  # waits config.serving.start_timeout (= settings.serving)
    try:
        if not service.is_running:
            raise DeploymentError(f"the prediction service for version {candidate['version']} did not start: "
                                  f"{_log_tail(service)}")
        rows = acceptance_holdout.head(settings.smoke_test.rows)
        model = _version().get_model_artifact(names.TRAINED_MODEL).load()
        expected = [float(v) for v in model.predict(rows[spec.feature_columns])]
        checked = smoke_test(service.base_url, _records(rows), expected, candidate["version"], candidate["bundle_id"],
                             settings.smoke_test.tolerance, api_key=_api_key(settings.serving.api_key_secret))
    except Exception:
        deployer.delete_model_server(service.uuid, force=True)
        logger.error("stopped the new service; the running production service was not touched")
        raise
    deployment = {"service_id": str(service.uuid), "url": service.base_url, "prediction_url": service.prediction_url,
                  "pid": service.status.pid, "log_file": service.status.log_file, "smoke_test": checked,
                  "model_version": candidate["version"], "bundle_id": candidate["bundle_id"],
                  "inference_log": config.log_dir}
    log_metadata(metadata=deployment)
    return deployment


def _install_bundle(deployer: Any, candidate: dict) -> Path:
    """Unpack the version's verified bundle artifact into the deployer's folder (once, no temporary copy).

    ZenML stores a folder artifact as ``data.tar.gz`` under the artifact's
    URI; it is unpacked with the bundle's own safe extraction. The service
    verifies the bundle again when it starts.
    """
    from zenml.io import fileio

    target = Path(deployer.local_path) / "bundles" / candidate["bundle_id"]
    if target.is_dir():
        return target
    artifact = _version().get_artifact(names.VERIFIED_MODEL_BUNDLE)
    if artifact is None:
        raise DeploymentError(f"model version {candidate['version']} has no '{names.VERIFIED_MODEL_BUNDLE}' "
                              "artifact; import its bundle again with `python run.py import-model BUNDLE`")
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    archive = partial.with_name(partial.name + ".tar.gz")
    try:
        fileio.copy(f"{artifact.uri.rstrip('/')}/data.tar.gz", str(archive), overwrite=True)
        safe_extract(archive, partial)
    finally:
        archive.unlink(missing_ok=True)
    partial.replace(target)
    return target


def _api_key(secret_name: str | None) -> str | None:
    if not secret_name:
        return None
    from components.prediction_server import API_KEY_SECRET_KEY

    try:
        return str(Client().get_secret(secret_name).secret_values[API_KEY_SECRET_KEY])
    except (KeyError, ValueError):
        raise DeploymentError(f"serving.api_key_secret names the ZenML secret '{secret_name}', which does not exist "
                              f"or has no '{API_KEY_SECRET_KEY}' value: "
                              f"`zenml secret create {secret_name} --{API_KEY_SECRET_KEY}=...`") from None


def _log_tail(service: Any, lines: int = 15) -> str:
    path = service.status.log_file
    if not path or not Path(path).is_file():
        return "no service log"
    text = re.sub(r"\x1b\[[0-9;]*m", "", Path(path).read_text(encoding="utf-8", errors="replace"))
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return f"last lines of {path}:\n" + "\n".join(tail)


@step(enable_cache=False)
def promote_to_production(deployment: dict, candidate: dict) -> Annotated[dict, names.DEPLOYMENT_RECORD]:
    """Put the version in ``production``, then retire the services of other versions of this model."""
    version = _version()
    try:
        previous = Client().get_model_version(candidate["model_name"], ModelStages.PRODUCTION)
        replaced = None if previous.id == version.id else str(previous.name)
    except KeyError:
        replaced = None
    version.set_stage(ModelStages.PRODUCTION, force=True)
    deployer = active_deployer()
    retired = []
    for service in deployer.services_of(candidate["model_name"]):
        if str(service.uuid) != deployment["service_id"]:
            retired.append(f"{service.config.model_version}@{getattr(service, 'base_url', None)}")
            deployer.delete_model_server(service.uuid, force=False)
    record = {"url": deployment["url"], "service_id": deployment["service_id"], "replaced_version": replaced,
              "retired_services": retired, "bundle_id": candidate["bundle_id"], "producer": candidate.get("producer"),
              "deployed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    log_metadata(metadata={"deployment": record}, model_version_id=version.id)
    return record
