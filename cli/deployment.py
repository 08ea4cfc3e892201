"""The industry partner's production commands: deploy, approve, rollback, undeploy, status."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import project_of, stack_options
from collabops.errors import CollabopsError, ConfigError
from collabops.settings import ProjectSettings

LATEST_IMPORTED = "latest-imported"


def add_commands(commands: Any) -> None:
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
                                               "(smoke-tested, no acceptance gate) and put it in production. "
                                               "Again, it steps further back; versions rolled away from are "
                                               "skipped.")
    stack_options(rollback)

    undeploy = commands.add_parser("undeploy", help="stop the prediction service")
    stack_options(undeploy)

    status = commands.add_parser("status", help="what serves where: URL, version, bundle, producer, since when")
    stack_options(status)


def deploy(args: argparse.Namespace) -> int:
    from orchestration import workspace

    project = project_of(args)
    wanted = str(args.version)
    if wanted != LATEST_IMPORTED and not wanted.isdigit():
        raise ConfigError(f"--version '{wanted}' is neither a version number nor {LATEST_IMPORTED}")
    stack, partner = workspace.use_stack(project, args.partner, args.stack, natural_partner="industry")
    return _deploy(project, stack, partner, wanted)


def _deploy(project: ProjectSettings, stack: str, partner: str | None, wanted: str, intro: str | None = None,
            rolling_back_from: str | None = None) -> int:
    """Deploy version ``wanted`` on ``stack``; a rollback (``rolling_back_from``) is smoke-tested but not gated.

    The gate's inputs are found before any run exists: the holdout and the
    rows of the model's training period (refused, saying what is missing,
    when the gate applies and they cannot be found).
    """
    from collabops.production.deployment import check_deployable
    from orchestration import models, services

    services.require_deployer()
    chosen = models.resolve(project.model_name, wanted, stack)
    check_deployable(chosen.metadata, chosen.number, project.deployment.require_approval)
    # This checkout must predict what the producer tested before the gate judges it or anything is recorded.
    largest = models.check_reproducible(chosen, project.keys_dir, project.exchange.prediction_tolerance)
    holdout_id, holdout_note = models.acceptance_holdout(chosen, stack)
    enforce_gate = rolling_back_from is None
    try:
        training: models.TrainingRows | None = models.training_rows(chosen, stack)
        training_note = f"fitted on {training.note}"
    except ConfigError as exc:
        if enforce_gate:
            raise
        training, training_note = None, f"not scored (the gate does not apply to a rollback): {exc}"
    print(intro or f"deploying {project.model_name} version {chosen.number} (bundle "
                   f"{chosen.imported_bundle_id}) on stack '{stack}'")
    print(f"reference sample re-predicted by this checkout: largest difference {largest:.3g} "
          f"(tolerance {project.exchange.prediction_tolerance:g})")
    print(f"acceptance holdout: {holdout_note}")
    print(f"seasonal baseline: {training_note}")
    return _run_deploy(project, chosen, holdout_id, training, partner, rolling_back_from)


def _run_deploy(project: ProjectSettings, chosen: Any, holdout_id: str, training: Any, partner: str | None,
                rolling_back_from: str | None) -> int:
    from orchestration import names
    from orchestration.runs import failed_run_output, run_pipeline

    config = {"model": {"name": project.model_name, "version": chosen.number},
              "parameters": {"contract_path": str(project.contract_path), "holdout_artifact_id": holdout_id,
                             "settings": project.deployment.model_dump(mode="json"),
                             "keys_dir": str(project.keys_dir), "task": project.task,
                             "enforce_gate": rolling_back_from is None,
                             "training_artifact_id": training.artifact_id if training else None,
                             "training_period": training.period if training else None,
                             "training_source": f"data bundle {training.bundle_id}" if training else "",
                             "prediction_tolerance": project.exchange.prediction_tolerance,
                             "rolling_back_from": rolling_back_from}}
    try:
        run = run_pipeline(names.DEPLOY, config, partner)
    except CollabopsError as exc:  # a refused gate still stored its report: show it (the error follows on stderr)
        run_name = getattr(exc, "run_name", None)
        report = failed_run_output(run_name, names.ACCEPTANCE_REPORT)
        if report is not None:
            print("\n" + str(report))
            print(gate_summary(failed_run_output(run_name, names.ACCEPTANCE_RESULT) or {}))
        raise
    print("\n" + str(run.output(names.ACCEPTANCE_REPORT)))
    print(gate_summary(run.output(names.ACCEPTANCE_RESULT)))
    record = run.output(names.DEPLOYMENT_RECORD)
    deployment = run.output(names.DEPLOYMENT)
    print("smoke test: " + "; ".join(deployment["smoke_test"]))
    if record.get("retired_services"):
        print("retired: " + ", ".join(f"version {s}" for s in record["retired_services"]))
    print(f"\n{project.model_name} version {chosen.number} is in production, serving at {record['url']}")
    print(f"  predict: curl -s -X POST {record['url']}/predict -H 'Content-Type: application/json' "
          "-d '{\"records\": [...]}'")
    print(f"  inference log: {deployment['inference_log']}")
    return 0


def gate_summary(result: dict[str, Any]) -> str:
    """One line from the gate's result: the candidate's score next to the seasonal baseline's and production's."""
    metric = result.get("metric") or "score"

    def score(evaluation: dict[str, Any] | None) -> str:
        value = ((evaluation or {}).get("overall") or {}).get(metric)
        return "-" if value is None else f"{value:.4f}"

    production = result.get("production_version")
    verdict = "passed" if result.get("passed") else "refused"
    return (f"gate {verdict}: {metric} on our holdout: candidate {score(result.get('candidate'))}, seasonal baseline "
            f"{score(result.get('baseline'))}, production "
            + (f"{score(result.get('production'))} (version {production})" if production else "none"))


def approve(args: argparse.Namespace) -> int:
    from orchestration import models, workspace

    project = project_of(args)
    if not args.by.strip():
        raise ConfigError("--by must name who approves")
    if not str(args.version).isdigit():
        raise ConfigError(f"VERSION '{args.version}' is not a version number")
    stack, _partner = workspace.use_stack(project, args.partner, args.stack, natural_partner="industry")
    chosen = models.resolve(project.model_name, str(args.version), stack)
    approval = models.record_approval(chosen, args.by.strip(), args.note)
    print(f"approved {project.model_name} version {chosen.number} by {approval['by']} at {approval['at']}"
          + (f": {args.note}" if args.note else ""))
    return 0


def rollback(args: argparse.Namespace) -> int:
    """Step back through the production history: serve the version before the current one again (no gate)."""
    from orchestration import models, workspace

    project = project_of(args)
    stack, partner = workspace.use_stack(project, args.partner, args.stack, natural_partner="industry")
    current = models.production(project.model_name)
    if current is None:
        raise ConfigError(f"model '{project.model_name}' has no production version on stack '{stack}'; "
                          "nothing to roll back")
    previous = models.rollback_target(current)
    return _deploy(project, stack, partner, previous, rolling_back_from=current.number,
                   intro=f"rolling back {project.model_name} from version {current.number} to version {previous} "
                         f"on stack '{stack}' (smoke test, no acceptance gate)")


def undeploy(args: argparse.Namespace) -> int:
    from orchestration import services, workspace

    project = project_of(args)
    stack, _partner = workspace.use_stack(project, args.partner, args.stack, natural_partner="industry")
    stopped = services.stop_all(project.model_name)
    if not stopped:
        print(f"no prediction service of '{project.model_name}' on stack '{stack}'; nothing to stop")
        return 0
    for service in stopped:
        print(f"stopped the service of version {service.model_version}"
              + (f" at {service.url}" if service.url else "") + f" (service {service.id})")
    print("the production stage is unchanged; `python run.py deploy --version N` serves a version again")
    return 0


def status(args: argparse.Namespace) -> int:
    from orchestration import models, names, services, workspace

    project = project_of(args)
    stack, _partner = workspace.use_stack(project, args.partner, args.stack, natural_partner="industry")
    production = models.production(project.model_name)
    record = (production.metadata.get("deployment") or {}) if production else {}
    print(f"model '{project.model_name}' on stack '{stack}': production version "
          f"{production.number if production else 'none'}")
    monitored = (production.metadata.get(names.MONITORING_METADATA) or {}) if production else {}
    if monitored:
        print(f"  last monitoring: {monitored.get('verdict')} at {monitored.get('at')} (run {monitored.get('run')}; "
              f"rows {monitored.get('rows', 0):,} from {(monitored.get('period') or {}).get('start')} to "
              f"{(monitored.get('period') or {}).get('end')})")
        for reason in (monitored.get("reasons") or [])[:5]:
            print(f"    - {reason}")
        if monitored.get("retraining_bundle"):
            print(f"    retraining bundle: {monitored['retraining_bundle']}")
    elif production:
        print("  last monitoring: never (`python run.py monitor`)")
    found = services.services(project.model_name)
    if not found:
        print("  no prediction service" + ("" if services.has_deployer() else " (this stack has no model deployer)"))
        return 0
    for service in found:
        state = "running" if service.running else f"not running ({service.state})"
        since = record.get("deployed_at") if record.get("service_id") == service.id else None
        lines = [f"  service {service.id}: {state}",
                 f"    url:           {service.url or '-'}",
                 f"    model version: {service.model_version}"
                 + (" (production)" if production and production.number == service.model_version else ""),
                 f"    bundle:        {service.bundle_id}",
                 f"    producer:      {service.producer.get('partner', '-')} (stack "
                 f"{service.producer.get('stack', '-')}, run {service.producer.get('zenml_run_id', '-')})",
                 f"    since:         {since or '-'}",
                 f"    pid:           {service.pid or '-'}",
                 f"    service log:   {service.log_file or '-'}",
                 f"    inference log: {service.inference_log or '-'}"]
        if not service.running:
            lines.append(f"    restart:       python run.py deploy --version {service.model_version}")
        print("\n".join(lines))
    return 0
