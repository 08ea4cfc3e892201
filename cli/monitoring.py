"""The industry's ``monitor`` command: the production model against its reference, a verdict, a retraining bundle."""

from __future__ import annotations

import argparse
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

from cli.common import project_of, stack_options
from collabops.errors import ConfigError

CRON_FIELDS = 5


def add_commands(commands: Any) -> None:
    monitor = commands.add_parser(
        "monitor", help="industry: monitor the production model (drift, data quality, live error)",
        description="Compare the production model's current data (by default the service's inference log since "
                    "the last monitoring) with the reference its bundle brought: data and prediction drift with "
                    "Evidently, data quality, and the live error where outcomes arrived. Prints 'verdict: "
                    "ok|warning|drift' and why; on drift, exports the period with a signed retraining request.")
    monitor.add_argument("--data", type=Path, help="a CSV/Parquet file of the period's rows instead of the log")
    monitor.add_argument("--since", help="first day (YYYY-MM-DD, or an ISO 8601 time) of the period, by the rows' "
                                         "time on the contract's clock")
    monitor.add_argument("--until", help="last day of the period (needs --since)")
    monitor.add_argument("--outcomes", type=Path,
                         help="a CSV/Parquet file with the actual outcomes (key columns and the target); with every "
                              "contract column it is also what a drift exports")
    monitor.add_argument("--schedule", metavar="CRON",
                         help="register the monitoring on this cron schedule instead of running it now (where the "
                              "stack's orchestrator runs schedules; else prints the crontab line to use)")
    monitor.add_argument("--no-export", action="store_true", help="never export a retraining bundle, even on drift")
    monitor.add_argument("--private-key", type=Path, default=None,
                         help="the industry's signing key for a retraining bundle (default: "
                              "$COLLABOPS_PRIVATE_KEY_FILE, else $XDG_CONFIG_HOME/collabops/keys/<partner>.key, "
                              "~/.config by default)")
    stack_options(monitor)


def _check_options(args: argparse.Namespace, time_zone: str) -> None:
    from collabops.monitoring.current import parse_period

    if args.until and not args.since:
        raise ConfigError("--until needs --since")
    if args.data is not None and args.since:
        raise ConfigError("give either --data FILE or --since/--until (the period of the inference log), not both")
    parse_period(args.since, args.until, time_zone)
    for option, path in (("--data", args.data), ("--outcomes", args.outcomes)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{option} {path}: file not found")
    if args.schedule is not None:
        check_cron(args.schedule)
        if args.since or args.data is not None:
            raise ConfigError("--schedule monitors what the service logged since the last run; --since, --until "
                              "and --data are for one run")


CRON_RANGES = ((0, 59, "minute"), (0, 23, "hour"), (1, 31, "day of month"), (1, 12, "month"), (0, 7, "day of week"))
CRON_NAMES = {3: ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
              4: ("sun", "mon", "tue", "wed", "thu", "fri", "sat")}


def check_cron(expression: str) -> None:
    """``ConfigError`` unless ``expression`` is a five-field cron schedule (crontab(5): numbers in each field's
    range, ``*``, ranges ``a-b``, steps ``/n``, lists ``a,b``; month and weekday names as three letters)."""
    import re

    fields = expression.split()
    if len(fields) != CRON_FIELDS:
        raise ConfigError(f"--schedule '{expression}' is not a cron expression of {CRON_FIELDS} fields "
                          "(minute hour day-of-month month day-of-week, e.g. '0 6 * * *')")
    for index, (field, (low, high, name)) in enumerate(zip(fields, CRON_RANGES, strict=True)):
        names = CRON_NAMES.get(index, ())
        for part in field.split(","):
            match = re.fullmatch(r"(\*|[0-9a-zA-Z]+(?:-[0-9a-zA-Z]+)?)(?:/([0-9]+))?", part)
            if match is None or (match.group(2) is not None and int(match.group(2)) < 1):
                raise ConfigError(f"--schedule '{expression}': '{part}' is not a valid {name} field")
            if match.group(1) == "*":
                continue
            for value in match.group(1).split("-"):
                number = names.index(value.lower()) + (1 if index == 3 else 0) if value.lower() in names else (
                    int(value) if value.isdigit() else None)
                if number is None or not low <= number <= high:
                    raise ConfigError(f"--schedule '{expression}': {name} '{value}' is not in {low}-{high}"
                                      + (f" or one of {', '.join(names)}" if names else ""))


def _export(project: Any, args: argparse.Namespace, partner: str) -> tuple[dict[str, Any] | None, str]:
    """The export parameters for a drift, or None and why not."""
    from collabops.data.contract import load_contract
    from collabops.data.dataset import file_columns
    from collabops.exchange.pseudonymise import load_key
    from collabops.exchange.signing import load_signer
    from orchestration import workspace

    if args.no_export or not project.monitoring.export_on_drift:
        return None, "on drift no retraining bundle is exported (--no-export or monitoring.export_on_drift false)"
    candidates = [path for path in (args.outcomes, args.data) if path is not None]
    if not candidates:
        return None, ("on drift no retraining bundle can be exported: the inference log has no outcomes and no "
                      "personal columns; give the period's full rows with --outcomes FILE")
    contract = load_contract(project.contract_path)
    lacking = {path: [c for c in contract.column_names if c not in file_columns(path)] for path in candidates}
    complete = [path for path in candidates if not lacking[path]]
    if not complete:  # the first file's missing columns are named (the outcomes file when both are given)
        rows = candidates[0]
        return None, (f"on drift no retraining bundle can be exported: {rows} lacks the contract column(s) "
                      f"{', '.join(lacking[rows])}, which an export needs")
    rows = complete[0]
    try:
        load_signer(partner, args.private_key)
        if contract.personal_columns:
            load_key(project.exchange.pseudonymisation_key_env, project.pseudonymisation_key_path)
    except ConfigError as exc:
        return None, (f"on drift no retraining bundle can be exported: {exc}; or give the signing key with "
                      "--private-key FILE or COLLABOPS_PRIVATE_KEY_FILE")
    return {"rows_path": str(Path(rows).resolve()), "out_dir": str(project.exchange_dir), "partner": partner,
            "bundle_id": str(uuid.uuid4()), "holdout_fraction": project.exchange.holdout_fraction,
            "key_env": project.exchange.pseudonymisation_key_env,
            "key_file": str(project.pseudonymisation_key_path),
            "private_key": str(args.private_key.resolve()) if args.private_key else None,
            "code_revision": workspace.code_revision()}, f"on drift a retraining bundle goes to {project.exchange_dir}"


def monitor(args: argparse.Namespace) -> int:
    from collabops.data.contract import load_contract
    from orchestration import models, monitoring, names, workspace
    from orchestration.runs import run_pipeline

    project = project_of(args)
    contract = load_contract(project.contract_path)
    _check_options(args, contract.time_zone)
    stack, partner = workspace.use_stack(project, args.partner, args.stack, natural_partner="industry")
    production = models.production(project.model_name)
    if production is None:
        raise ConfigError(f"no version of '{project.model_name}' is in production on stack '{stack}': nothing to "
                          "monitor (deploy one with `python run.py deploy`)")
    log_dir = monitoring.inference_log_dir(project.model_name)
    if args.data is None and log_dir is None:
        raise ConfigError(f"stack '{stack}' has no collabops model deployer, so there is no inference log; give the "
                          "period's rows with --data FILE")
    last = production.metadata.get(names.MONITORING_METADATA) or {}
    since_last = not (args.since or args.data)
    # Without dates: what the service logged after the last monitoring, else after the version went into
    # production (the deploy's smoke-test requests come before that and are not production traffic).
    deployed_at = (production.metadata.get(names.DEPLOYMENT_METADATA) or {}).get("deployed_at")
    source = {"data": str(args.data.resolve()) if args.data else None, "log_dir": log_dir,
              "after": (last.get("watermark") or deployed_at) if since_last else None,
              "since_last": since_last, "previous_watermark": last.get("watermark"),
              "since": args.since, "until": args.until,
              "outcomes": str(args.outcomes.resolve()) if args.outcomes else None}
    if not args.schedule:
        _check_rows(args, contract, production.number, log_dir, source)
    export, export_note = _export(project, args, partner or "industry")
    config = {"model": {"name": project.model_name, "version": production.number},
              "parameters": {"contract_path": str(project.contract_path), "model_name": project.model_name,
                             "task": project.task, "settings": project.monitoring.model_dump(mode="json"),
                             "source": source, "export": export}}
    if args.schedule:
        return _schedule(args, project, config, partner)
    what = args.data or (f"the inference log {log_dir}" + (f" after {source['after']}" if source["after"] else ""))
    print(f"monitoring {project.model_name} version {production.number} (production) on stack '{stack}': "
          f"{what}" + (f", {args.since} to {args.until or 'now'}" if args.since else ""))
    print(export_note)
    run = run_pipeline(names.MONITORING, config, partner)
    summary = run.output(names.MONITORING_SUMMARY)
    record = monitoring.last_verdict(project.model_name) or {}
    lines = [f"\nMonitoring run '{run.name}': {summary['rows']:,} rows from {summary['period']['start']} to "
             f"{summary['period']['end']} ({summary['outcome_rows']:,} with outcomes); {summary['season']}",
             f"verdict: {summary['verdict']}"]
    lines += [f"  - {reason}" for reason in summary["reasons"]]
    lines.append(f"report:  {run.artifact_uri(names.DRIFT_REPORT)}/output.html (Evidently; in the dashboard: "
                 f"run {run.name}, artifact '{names.DRIFT_REPORT}')")
    if record.get("retraining_bundle"):
        lines.append(f"retraining bundle: {record['retraining_bundle']}")
    elif summary["verdict"] == "drift" and export is not None and run.has("retraining_request"):
        lines.append(f"no retraining bundle: {run.output('retraining_request').get('not_exported')}")
    lines.append(f"recorded on version {production.number}; `python run.py status` shows it")
    lines.append(f"dashboard: {workspace.dashboard_hint(run.id)}")
    print("\n".join(lines))
    return 0


def _check_rows(args: argparse.Namespace, contract: Any, version: str, log_dir: str | None,
                source: dict[str, Any]) -> None:
    """Refuse, before any run exists, a period without rows and files the contract refuses (one message)."""
    from collabops.data.dataset import file_columns
    from collabops.errors import MonitoringError
    from collabops.monitoring import current as currents

    period = currents.parse_period(args.since, args.until, contract.time_zone)
    if args.data is not None:
        frame = currents.read_current_file(args.data, contract, period).frame
        rows = len(frame)
        where = f"{args.data}" + (f" in the period {period.describe()}" if period.given else "")
        lacking = [c for c in contract.feature_columns if c not in frame.columns]
        if lacking and currents.PREDICTION not in frame.columns:
            raise MonitoringError(f"{args.data}: has no '{currents.PREDICTION}' column and lacks feature(s) "
                                  f"{', '.join(lacking)}, so the production model cannot predict it; give the "
                                  "file every feature, or the predictions that were served")
    else:
        if not Path(log_dir or "").is_dir():
            raise MonitoringError(f"no inference log at {log_dir}: the service has not served this model on this "
                                  "stack (deploy it, or give the period's rows with --data FILE)")
        rows = currents.count_log_rows(Path(log_dir or ""), contract, version, source.get("after"), period)
        where = (f"the inference log {log_dir}" + (f" in the period {period.describe()}" if period.given else
                                                  f" served after {source['after']}" if source.get("after") else ""))
    if rows == 0:
        raise MonitoringError(f"no rows of model version {version} to monitor in {where}; send requests to the "
                              "service (it writes its log every deployment.serving.log_flush_seconds), or give "
                              "--data FILE or other dates")
    if args.outcomes is not None:
        needed = [c for c in [*contract.key_columns, contract.target] if c not in file_columns(args.outcomes)]
        if needed:
            raise ConfigError(f"--outcomes {args.outcomes}: missing column(s) {', '.join(needed)} (outcomes need "
                              "the key columns and the target)")


def _schedule(args: argparse.Namespace, project: Any, config: dict[str, Any], partner: str | None) -> int:
    from orchestration import monitoring, names
    from orchestration.runs import run_pipeline

    orchestrator = monitoring.orchestrator()
    if not orchestrator.schedulable:
        import os

        checkout = Path(__file__).resolve().parents[1]  # the checkout whose run.py this is
        command = [sys.executable, str(checkout / "run.py"), "--project", str(Path(project.source)), "monitor",
                   "--partner", partner or "industry"]
        if args.outcomes:
            command += ["--outcomes", str(args.outcomes.resolve())]
        if args.no_export:
            command.append("--no-export")
        if args.private_key:
            command += ["--private-key", str(args.private_key.resolve())]
        log = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "collabops" / \
            f"monitoring-{project.model_name}.log"
        settings = {k: os.environ[k] for k in ("ZENML_CONFIG_PATH", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                                                "COLLABOPS_PRIVATE_KEY_FILE") if os.environ.get(k)}
        prefix = "NO_COLOR=1 " + "".join(f"{k}={shlex.quote(v)} " for k, v in settings.items())
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"the orchestrator '{orchestrator.name}' (flavor {orchestrator.flavor}) of this stack does not run "
              "schedules, so nothing was registered. Add this line to your crontab (`crontab -e`) instead; each "
              f"run appends to {log}"
              + (" (--outcomes is read again at every run: keep that file up to date)" if args.outcomes else "")
              + ":")
        print(f"{args.schedule} cd {shlex.quote(str(checkout))} && {prefix}{shlex.join(command)} "
              f">> {shlex.quote(str(log))} 2>&1")
        return 0
    config = {**config, "schedule": {"cron_expression": args.schedule, "name": f"monitor-{project.model_name}"}}
    run_pipeline(names.MONITORING, config, partner)
    print(f"registered: the monitoring of {project.model_name} runs on '{args.schedule}' on orchestrator "
          f"'{orchestrator.name}' (`zenml pipeline schedule list` shows it)")
    return 0
