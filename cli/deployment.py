"""The industry partner's production commands: deploy, approve, rollback, undeploy, status."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any, Callable, Optional

from cli.workspace import COLLABORATION_CONFIG, ROOT, Collaboration
from collabops.errors import ConfigError

CONTRACT = ROOT / "configs" / "contract.yaml"
TRAINING_CONFIG = ROOT / "configs" / "training.yaml"
LATEST_IMPORTED = "latest-imported"


def add_deployment_commands(commands: Any, stack_options: Callable[[argparse.ArgumentParser], None]) -> None:
    deploy = commands.add_parser(
        "deploy", help="industry: gate, serve and promote an imported model version",
        description="Acceptance gate on the industry's own holdout -> start the prediction service -> smoke test "
                    "-> promote to production. If anything fails, what runs now keeps running.")
    deploy.add_argument("--version", default=LATEST_IMPORTED,
                        help=f"model version number, or {LATEST_IMPORTED} (default)")
    stack_options(deploy)

    approve = commands.add_parser("approve", help="record a human approval on a model version")
    approve.add_argument("version", help="model version number")
    approve.add_argument("--by", required=True, help="who approves (name or e-mail)")
    approve.add_argument("--note", default="", help="why, or what was checked")
    stack_options(approve)

    rollback = commands.add_parser("rollback", help="serve the previous production version again",
                                   description="Redeploy the version production had before the current one "
                                               "(smoke-tested, no acceptance gate) and put it in production.")
    stack_options(rollback)

    undeploy = commands.add_parser("undeploy", help="stop the prediction service")
    stack_options(undeploy)

    status = commands.add_parser("status", help="what serves where: URL, version, bundle, producer, since when")
    stack_options(status)


def dispatch(args: argparse.Namespace) -> int:
    return {"deploy": deploy, "approve": approve, "rollback": rollback, "undeploy": undeploy,
            "status": status}[args.command](args)


def _settings(collaboration: Collaboration) -> Any:
    from collabops.production.deployment import DeploymentSettings

    return DeploymentSettings.from_dict(collaboration.deployment, source=f"{COLLABORATION_CONFIG}: deployment")


def _choose_version(model_name: str, wanted: str, stack: str) -> Any:
    """A model version by number, or the newest one imported from a bundle."""
    from zenml.client import Client

    client = Client()
    if wanted == LATEST_IMPORTED:
        versions = client.list_model_versions(model_name_or_id=model_name, sort_by="desc:number", size=100) \
            if _model_exists(model_name) else []
        for version in versions:
            if "imported_bundle_id" in (client.get_model_version(model_name, version.id).run_metadata or {}):
                return client.get_model_version(model_name, version.id)
        raise ConfigError(f"model '{model_name}' has no imported version on stack '{stack}' "
                          "(import one with `python run.py import-model BUNDLE`)")
    if not wanted.isdigit():
        raise ConfigError(f"--version '{wanted}' is neither a version number nor {LATEST_IMPORTED}")
    try:
        return client.get_model_version(model_name, int(wanted))
    except KeyError:
        raise ConfigError(f"model '{model_name}' has no version {wanted} on stack '{stack}'") from None


def _model_exists(model_name: str) -> bool:
    from zenml.client import Client

    try:
        Client().get_model(model_name)
        return True
    except KeyError:
        return False


def find_holdout(version_metadata: dict[str, Any], stack: str) -> tuple[str, str]:
    """The acceptance holdout for a version: kept back by the export run of the data it was trained on.

    Falls back to the newest export run on this stack when the bundle does
    not say which data it was trained on. Returns (artifact id, description).
    """
    from zenml.client import Client

    client = Client()
    trained_on = (version_metadata.get("producer_model") or {}).get("training_data_bundle_id")
    try:
        runs = client.list_pipeline_runs(pipeline_name="export-data", sort_by="desc:created", size=50).items
    except KeyError:
        runs = []
    finished = [r for r in runs if r.status.value == "completed"]
    for run in finished:
        run = client.get_pipeline_run(run.id)
        written = (run.steps["write_data_bundle_step"].run_metadata or {}).get("bundle_id")
        if trained_on and written == trained_on:
            return str(run.steps["hold_out_acceptance"].outputs["acceptance_holdout"][0].id), \
                f"kept back by export run {run.name} (data bundle {written}, which the model was trained on)"
    if not finished:
        raise ConfigError(f"no acceptance holdout on stack '{stack}': the gate needs the rows export-data keeps "
                          "back; run `python run.py export-data --data FILE --out FOLDER` on this stack first")
    run = client.get_pipeline_run(finished[0].id)
    note = (f"the model was trained on data bundle {trained_on}, which no export run on this stack wrote; "
            if trained_on else "the bundle does not say which data it was trained on; ")
    return str(run.steps["hold_out_acceptance"].outputs["acceptance_holdout"][0].id), \
        note + f"using the holdout of the newest export run, {run.name}"


def deploy(args: argparse.Namespace, enforce_gate: bool = True, intro: Optional[str] = None) -> int:
    from cli.exchange import _prepare
    from collabops.production.deployment import check_deployable
    from components.model_deployer import active_deployer

    collaboration, stack, partner = _prepare(args, "industry")
    settings = _settings(collaboration)
    active_deployer()
    chosen = _choose_version(collaboration.model_name, str(args.version), stack)
    metadata = dict(chosen.run_metadata or {})
    check_deployable(metadata, str(chosen.name), settings.require_approval)
    holdout_id, holdout_note = find_holdout(metadata, stack)
    print(intro or f"deploying {collaboration.model_name} version {chosen.name} (bundle "
                   f"{metadata['imported_bundle_id']}) on stack '{stack}'")
    print(f"acceptance holdout: {holdout_note}")
    return _run_deploy(collaboration, chosen, holdout_id, settings, partner, enforce_gate)


def _run_deploy(collaboration: Collaboration, chosen: Any, holdout_id: str, settings: Any, partner: str,
                enforce_gate: bool) -> int:
    import yaml

    from cli.main import run_pipeline
    from collabops.errors import CollabopsError
    from pipelines.deployment import deploy_pipeline

    task = (yaml.safe_load(TRAINING_CONFIG.read_text(encoding="utf-8")) or {}).get("parameters", {}).get("task",
                                                                                                        "regression")
    config = {"model": {"name": collaboration.model_name, "version": str(chosen.name)},
              "parameters": {"contract_path": str(CONTRACT), "holdout_artifact_id": holdout_id,
                             "settings": collaboration.deployment, "keys_dir": str(collaboration.keys_dir),
                             "task": task, "enforce_gate": enforce_gate}}
    try:
        run = run_pipeline(deploy_pipeline, config, partner)
    except CollabopsError:
        _print_report_of_latest_run()
        raise
    if run is None:
        return 1
    from zenml.client import Client

    run = Client().get_pipeline_run(run.id)
    print("\n" + str(run.steps["acceptance_gate"].outputs["acceptance_report"][0].load()))
    record = run.steps["promote_to_production"].outputs["deployment_record"][0].load()
    deployment = run.steps["start_prediction_service"].outputs["deployment"][0].load()
    print("smoke test: " + "; ".join(deployment["smoke_test"]))
    if record.get("retired_services"):
        print("retired: " + ", ".join(f"version {s}" for s in record["retired_services"]))
    print(f"\n{collaboration.model_name} version {chosen.name} is in production, serving at {record['url']}")
    print(f"  predict: curl -s -X POST {record['url']}/predict -H 'Content-Type: application/json' "
          "-d '{\"records\": [...]}'")
    print(f"  inference log: {deployment['inference_log']}")
    return 0


def _print_report_of_latest_run() -> None:
    """After a refused deploy, show the gate's report (it is stored even when the gate fails)."""
    import sys

    from zenml.client import Client

    runs = Client().list_pipeline_runs(pipeline_name="deploy", sort_by="desc:created", size=1).items
    gate = Client().get_pipeline_run(runs[0].id).steps.get("acceptance_gate") if runs else None
    if gate is not None and "acceptance_report" in gate.outputs:
        print("\n" + str(gate.outputs["acceptance_report"][0].load()), file=sys.stderr)


def approve(args: argparse.Namespace) -> int:
    from zenml import log_metadata

    from cli.exchange import _prepare

    collaboration, stack, _partner = _prepare(args, "industry")
    if not args.by.strip():
        raise ConfigError("--by must name who approves")
    if not str(args.version).isdigit():
        raise ConfigError(f"VERSION '{args.version}' is not a version number")
    chosen = _choose_version(collaboration.model_name, str(args.version), stack)
    approval = {"by": args.by.strip(), "note": args.note,
                "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    log_metadata(metadata={"approval": approval}, model_version_id=chosen.id)
    print(f"approved {collaboration.model_name} version {chosen.name} by {approval['by']} at {approval['at']}"
          + (f": {args.note}" if args.note else ""))
    return 0


def _production(model_name: str) -> Optional[Any]:
    from zenml.client import Client
    from zenml.enums import ModelStages

    try:
        return Client().get_model_version(model_name, ModelStages.PRODUCTION)
    except KeyError:
        return None


def rollback(args: argparse.Namespace) -> int:
    from cli.exchange import _prepare

    collaboration, stack, partner = _prepare(args, "industry")
    current = _production(collaboration.model_name)
    if current is None:
        raise ConfigError(f"model '{collaboration.model_name}' has no production version on stack '{stack}'; "
                          "nothing to roll back")
    previous = ((current.run_metadata or {}).get("deployment") or {}).get("replaced_version")
    if not previous:
        raise ConfigError(f"production version {current.name} replaced no earlier production version; "
                          "there is nothing to roll back to")
    args.version = str(previous)
    return deploy(args, enforce_gate=False,
                  intro=f"rolling back {collaboration.model_name} from version {current.name} to version {previous} "
                        f"on stack '{stack}' (smoke test, no acceptance gate)")


def undeploy(args: argparse.Namespace) -> int:
    from cli.exchange import _prepare

    collaboration, stack, _partner = _prepare(args, "industry")
    from components.model_deployer import active_deployer

    deployer = active_deployer()
    services = deployer.services_of(collaboration.model_name)
    if not services:
        print(f"no prediction service of '{collaboration.model_name}' on stack '{stack}'; nothing to stop")
        return 0
    for service in services:
        url = service.base_url
        deployer.delete_model_server(service.uuid, force=False)
        print(f"stopped the service of version {service.config.model_version}"
              + (f" at {url}" if url else "") + f" (service {service.uuid})")
    print("the production stage is unchanged; `python run.py deploy --version N` serves a version again")
    return 0


def status(args: argparse.Namespace) -> int:
    from cli.exchange import _prepare

    collaboration, stack, _partner = _prepare(args, "industry")
    production = _production(collaboration.model_name)
    record = ((production.run_metadata or {}).get("deployment") or {}) if production else {}
    print(f"model '{collaboration.model_name}' on stack '{stack}': production version "
          f"{production.name if production else 'none'}")
    from components.model_deployer import active_deployer

    deployer = active_deployer(required=False)
    services = deployer.services_of(collaboration.model_name) if deployer is not None else []
    if not services:
        print("  no prediction service" + ("" if deployer is not None else " (this stack has no model deployer)"))
        return 0
    for service in services:
        state = "running" if service.is_running else f"not running ({service.status.state.value})"
        producer = service.config.producer or {}
        since = record.get("deployed_at") if record.get("service_id") == str(service.uuid) else None
        lines = [f"  service {service.uuid}: {state}",
                 f"    url:           {service.base_url or '-'}",
                 f"    model version: {service.config.model_version}"
                 + (" (production)" if production and str(production.name) == str(service.config.model_version) else ""),
                 f"    bundle:        {service.config.bundle_id}",
                 f"    producer:      {producer.get('partner', '-')} (stack {producer.get('stack', '-')}, "
                 f"run {producer.get('zenml_run_id', '-')})",
                 f"    since:         {since or '-'}",
                 f"    pid:           {service.status.pid or '-'}",
                 f"    service log:   {service.status.log_file or '-'}",
                 f"    inference log: {service.config.log_dir or '-'}"]
        if not service.is_running:
            lines.append(f"    restart:       python run.py deploy --version {service.config.model_version}")
        print("\n".join(lines))
    return 0

