"""Steps of the deployment pipeline: candidate -> acceptance gate -> service -> smoke test -> production.

Order matters for safety: nothing that serves changes before the gate has
passed and the new service has answered the smoke test; the old service is
retired only after the new version is in the ``production`` stage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import shutil
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import numpy as np
import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.types import MarkdownString

from collabops.data.contract import contract_from_dict
from collabops.errors import CollabopsError
from collabops.exchange.bundle import safe_extract
from collabops.production.acceptance import baseline_on_training_rows, gate
from collabops.production.deployment import DeploymentError, check_deployable, smoke_test
from collabops.settings import DeploymentSettings, ExchangeSettings
from collabops.training.evaluation import evaluate
from collabops.training.tasks import get_task
from components.model_deployer import active_deployer
from orchestration import names
from orchestration.models import history_after

DEFAULT_PREDICTION_TOLERANCE = ExchangeSettings.model_fields["prediction_tolerance"].default

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
def acceptance_gate(candidate: dict, acceptance_holdout: pd.DataFrame, training_rows: pd.DataFrame | None,
                    contract: dict, task: str, settings: DeploymentSettings, enforce: bool = True,
                    training_period: dict | None = None, training_source: str = "") -> tuple[
    Annotated[MarkdownString, names.ACCEPTANCE_REPORT], Annotated[dict, names.ACCEPTANCE_RESULT]
]:
    """Score the candidate, the seasonal baseline and the current production model on our holdout; judge.

    The baseline is the task's, fitted on ``training_rows`` (the rows the
    export wrote into the data bundle the model was trained on) within
    ``training_period`` when the model bundle names one, never on the
    holdout. The verdict is returned, not raised, so the report is stored and
    shown in the dashboard even when the gate refuses. ``enforce`` False (a
    rollback) records the report but passes; there ``training_rows`` may be
    None.
    """
    spec, kind = contract_from_dict(contract), get_task(task)
    acceptance = settings.acceptance
    model = _version().get_model_artifact(names.TRAINED_MODEL).load()
    scores = evaluate(kind, spec, model, acceptance_holdout)
    baseline, fit, unscored = None, None, None
    if training_rows is not None:
        try:
            baseline, fit = baseline_on_training_rows(kind, spec, training_rows, acceptance_holdout, training_period,
                                                      training_source)
        except CollabopsError as exc:
            if enforce:
                raise
            unscored = f"seasonal baseline not scored: {exc}"
    production, production_version = _production_scores(candidate, kind, spec, acceptance_holdout)
    report = gate(scores, acceptance, acceptance.metric, production=production,
                  university=candidate.get("university_metrics") or None, task=kind, baseline=baseline,
                  baseline_fit=fit)
    if not enforce:
        report = dataclasses.replace(report, passed=True, applied=False, failures=[], reasons=[
            "gate not applied: rollback to a version that served in production before",
            *([unscored] if unscored else []), *report.reasons])
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
                             contract: dict, settings: DeploymentSettings, keys_dir: str,
                             prediction_tolerance: float = DEFAULT_PREDICTION_TOLERANCE) -> Annotated[
                                 dict, names.DEPLOYMENT]:
    """Start the candidate's service beside the running one and smoke-test it; on failure stop it again.

    ``prediction_tolerance`` is the project's ``exchange.prediction_tolerance``:
    the service re-predicts the bundle's reference sample when it starts and
    refuses to serve beyond it; that refusal is this step's one-line error.
    """
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
        serving=settings.serving, prediction_tolerance=prediction_tolerance)
    service = deployer.start_new_server(config)  # waits config.serving.start_timeout (= settings.serving)
    try:
        if not service.is_running:
            raise DeploymentError(f"the prediction service for version {candidate['version']} did not start: "
                                  f"{_start_failure(service)}")
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


_REFUSAL_LINE = re.compile(r"^error: (.+)$")
"""How the service refuses to start (``collabops.production.serving.process.main``): one line."""
_ERROR_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception)): (.+)$")
"""The last line of a traceback: how a crash (or a service from before the one-line refusals) ends its log."""


def _start_failure(service: Any) -> str:
    """Why a service did not start, in one line: the refusal or error its log ends with, and where the log is."""
    path = service.status.log_file
    if not path or not Path(path).is_file():
        return "it wrote no log"
    return f"{start_failure(Path(path).read_text(encoding='utf-8', errors='replace'))} (service log: {path})"


def start_failure(log: str) -> str:
    """The service's last refusal (``error: message``) or exception (``SomeError: message``) in ``log``, one line.

    ``log`` is the service's whole log text (colour codes are removed);
    without either, its last line.
    """
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", log).splitlines() if line.strip()]
    for line in reversed(lines):
        refused = _REFUSAL_LINE.match(line)
        if refused:
            return refused.group(1)
        crashed = _ERROR_LINE.match(line)
        if crashed:
            return f"{crashed.group(1)}: {crashed.group(2)}"
    return f"its log ends with: {lines[-1]}" if lines else "its log is empty"


@step(enable_cache=False)
def promote_to_production(deployment: dict, candidate: dict, rolling_back_from: str | None = None) -> Annotated[
        dict, names.DEPLOYMENT_RECORD]:
    """Put the version in ``production``, then retire the services of other versions of this model.

    The record (``deployment`` metadata of the version) names the version it
    replaced and the production history before it
    (``orchestration.models.history_after``); ``rolling_back_from`` is the
    production version a rollback leaves. If production changed since the
    rollback was planned, the new service is stopped and nothing changes.
    """
    version = _version()
    deployer = active_deployer()
    try:
        previous = Client().get_model_version(candidate["model_name"], ModelStages.PRODUCTION)
    except KeyError:
        previous = None
    current = str(previous.name) if previous is not None else None
    current_record = (previous.run_metadata or {}).get(names.DEPLOYMENT_METADATA) if previous is not None else None
    try:
        history = history_after(str(version.name), current, current_record, rolling_back_from)
    except CollabopsError:
        deployer.delete_model_server(UUID(deployment["service_id"]), force=True)
        raise
    replaced = None if current == str(version.name) else current
    version.set_stage(ModelStages.PRODUCTION, force=True)
    retired = []
    for service in deployer.services_of(candidate["model_name"]):
        if str(service.uuid) != deployment["service_id"]:
            retired.append(f"{service.config.model_version}@{getattr(service, 'base_url', None)}")
            deployer.delete_model_server(service.uuid, force=False)
    # Full precision: monitoring starts after this instant, and the smoke test's requests came just before it.
    record = {"url": deployment["url"], "service_id": deployment["service_id"], "replaced_version": replaced,
              "history": history, "rolled_back_from": rolling_back_from,
              "retired_services": retired, "bundle_id": candidate["bundle_id"], "producer": candidate.get("producer"),
              "deployed_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")}
    log_metadata(metadata={names.DEPLOYMENT_METADATA: record}, model_version_id=version.id)
    return record
