"""The university's commands: train (on a file, a data bundle or the example data), generate-data, stacks."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from cli.common import check_writable_path, project_of, project_option, project_path, stack_options
from collabops.errors import ConfigError
from collabops.settings import ProjectSettings, load_training_config


def add_commands(commands: Any) -> None:
    train = commands.add_parser("train", help="run the training pipeline",
                                description="Validate, split, train, evaluate, track in MLflow, "
                                            "create a model version and promote it if it wins.")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="CSV or Parquet file (default: the example generator's data)")
    source.add_argument("--data-bundle", type=Path, help="a data bundle from the industry partner (verified first)")
    train.add_argument("--config", type=Path, default=None,
                       help="ZenML run configuration of the training pipeline (default: the project's)")
    train.add_argument("--no-cache", action="store_true", help="run every step, even if cached")
    stack_options(train)

    stacks = commands.add_parser("stacks", help="register or update every stack in stacks/",
                                 description="Initialise the ZenML repository and register every "
                                             "stack in stacks/ (idempotent, never prompts).")
    project_option(stacks)
    stacks.add_argument("--partner", help="then make this partner's stack the active stack")
    stacks.add_argument("--stack", help="then make this stack the active stack")

    generate = commands.add_parser("generate-data", help="write the example dataset to a file",
                                   description="Write realistic hourly car-park occupancy (seeded, deterministic).")
    generate.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet")
    generate.add_argument("--months", type=int, default=12, help="months of hourly data (default 12)")
    generate.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    generate.add_argument("--start", help="first day, YYYY-MM-DD (default 2024-01-01, 2025-01-01 with --drift)")
    generate.add_argument("--car-parks", type=int, default=20, help="number of car parks (default 20)")
    generate.add_argument("--drift", action="store_true",
                          help="a later period whose distribution changes (price rise, demand drop)")
    generate.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def generate_data(args: argparse.Namespace) -> int:
    from collabops.data.dataset import SUFFIXES, write_table
    from collabops.data.generator import GeneratorError, GeneratorSettings, generate

    if SUFFIXES.get(args.out.suffix.lower()) is None:
        raise ConfigError(f"{args.out}: unsupported file type '{args.out.suffix}' (use .csv or .parquet)")
    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out}: already exists (use --force to overwrite)")
    check_writable_path(args.out)
    if args.months < 1 or args.car_parks < 1:
        raise ConfigError("--months and --car-parks must be at least 1")
    try:
        settings = GeneratorSettings(months=args.months, seed=args.seed, start=args.start,
                                     car_parks=args.car_parks, drift=args.drift)
    except GeneratorError as exc:  # one message naming the option
        raise ConfigError(f"--{exc.setting.replace('_', '-')} {exc.problem}") from None
    print(f"generating {settings.months} month(s) of hourly data for {settings.car_parks} car parks "
          f"from {settings.start_date.date()} in {settings.time_zone} (seed {settings.seed}"
          f"{', drift' if settings.drift else ''}) ...")
    frame = generate(settings)
    write_table(frame, args.out)
    print(f"wrote {len(frame):,} rows to {args.out}")
    return 0


def stacks(args: argparse.Namespace) -> int:
    from orchestration import workspace

    project = project_of(args)
    if args.partner:
        project.stack_of(args.partner)  # an unknown partner is refused before the store is touched
    for line in workspace.setup(project):
        print(line)
    if args.partner or args.stack:
        chosen, _ = workspace.select_stack(project, args.partner, args.stack)
        workspace.activate(chosen)
        print(f"active stack: {chosen}")
    return 0


def preflight(project: ProjectSettings, data: Path, split: dict[str, Any] | None = None,
              now: dt.datetime | None = None) -> None:
    """Check a data file as the pipeline will, before a run (and a model version) exists.

    Bad input is refused in about a second with the same message the
    pipeline would give, and nothing is recorded: the contract (values, keys,
    the clock), a target that is not constant, times no later than ``now``
    (an aware datetime, default the current time) plus the project's
    ``data.max_days_ahead`` days, and, with ``split``, enough rows for the
    time split. ``train --data`` and ``export-data`` call it. Raises
    ``DataError``/``ConfigError`` naming the file, column and rows.
    """
    from collabops.data.contract import load_contract
    from collabops.data.dataset import read_table
    from collabops.data.split import SplitSettings, time_split

    contract = load_contract(project.contract_path)
    frame = contract.validate(read_table(data, contract), source=str(data))
    contract.check_horizon(frame, str(data), project.data.max_days_ahead, now)
    contract.check_trainable(frame, source=str(data))
    if split is not None:
        time_split(frame, contract.time_column, SplitSettings.from_dict(split), source=str(data))


def train(args: argparse.Namespace) -> int:
    from orchestration import workspace

    project = project_of(args)
    config = load_training_config(args.config or project.training_path)
    parameters = config["parameters"]
    _check_estimator_parameters(project, parameters.get("search"))
    if args.data is not None:
        preflight(project, args.data, parameters.get("split"))
        parameters["data_path"] = str(args.data.resolve())
    if args.data_bundle is not None and not args.data_bundle.exists():
        raise ConfigError(f"{args.data_bundle}: bundle not found")
    stack, partner = workspace.use_stack(project, args.partner, args.stack)
    parameters.update(contract_path=str(project.contract_path), task=project.task, model_name=project.model_name,
                      model_description=project.description,
                      experiment_tracker=workspace.experiment_tracker_name(),
                      code_revision=workspace.code_revision(),
                      min_improvement=project.promotion.min_improvement,
                      max_days_ahead=project.data.max_days_ahead)
    if args.no_cache:
        config["enable_cache"] = False
    if args.data_bundle is None:
        print(f"training {project.model_name} as partner '{partner or 'unknown'}' on stack '{stack}' with data from "
              f"{parameters.get('data_path') or 'the example generator'}")
        return _train_and_report(project, config, stack, partner)

    from collabops.data.contract import load_contract
    from collabops.exchange.bundle import Limits, open_bundle
    from collabops.exchange.data_bundle import describe_retraining_request, retraining_request
    from collabops.exchange.signing import trusted_keys

    with open_bundle(args.data_bundle, trusted_keys(project.keys_dir), kind="data",
                     contract=load_contract(project.contract_path), limits=Limits.of(project.exchange),
                     command="train --data-bundle", partner=partner) as bundle:
        print(f"verified data bundle {bundle.bundle_id} signed by '{bundle.signer}'")
        request = retraining_request(bundle)
        if request is not None:  # the run records it too: load_data_bundle's provenance metadata
            print("\n".join(describe_retraining_request(request, requested_by=bundle.signer)))
        parameters.update(data_bundle=str(bundle.root), data_bundle_manifest=bundle.manifest,
                          data_bundle_signer=bundle.signer)
        print(f"training {project.model_name} as partner '{partner or 'unknown'}' on stack '{stack}' with data from "
              f"{args.data_bundle}")
        return _train_and_report(project, config, stack, partner)


def _check_estimator_parameters(project: ProjectSettings, search: dict[str, Any] | None) -> None:
    """Every search parameter must be one the task's estimator takes: refused now, not once a run exists."""
    from collabops.training.search import SearchSettings
    from collabops.training.tasks import get_task

    task = get_task(project.task)
    for candidate in SearchSettings.from_dict(search).candidates():
        estimator = task.make_estimator({})
        unknown = sorted(set(candidate) - set(estimator.get_params()))
        if unknown:
            raise ConfigError(f"search: {', '.join(unknown)} is not a parameter of {type(estimator).__name__} "
                              f"(see its documentation; known: {', '.join(sorted(estimator.get_params()))})")


def _train_and_report(project: ProjectSettings, config: dict[str, Any], stack: str, partner: str | None) -> int:
    from orchestration import models, names, workspace
    from orchestration.runs import run_pipeline

    run = run_pipeline(names.TRAINING, config, partner)
    metrics, baseline = run.output(names.TEST_METRICS), run.output(names.BASELINE_TEST_METRICS)
    decision = run.output(names.PROMOTION_DECISION) if run.has(names.PROMOTION_DECISION) else {}
    overall, base = metrics["overall"], baseline["overall"]
    metric = decision.get("metric") or next(iter(overall))
    lines = ["", f"Training run '{run.name}' finished: {run.status} (stack '{stack}', partner '{partner or '-'}')",
             "  test period:   " + "  ".join(f"{k.upper() if k != 'r2' else 'R²'} {v:.4f}" for k, v in overall.items()
                                             if isinstance(v, float))
             + f"   (baseline {metric.upper()} {base[metric]:.4f})"]
    if run.model_version is not None:
        version = models.resolve(project.model_name, str(run.model_version.name), stack)
        lines.append(f"  model version: {version.model_name} version {version.number} "
                     f"(stage: {version.stage or 'none'})")
    if decision:
        lines.append(f"  decision:      {decision['reason']}")
    lines.append(f"  artifacts:     {workspace.artifact_store_path()}")
    tracking = workspace.tracking_uri()
    if tracking:
        lines.append(f"  MLflow UI:     mlflow ui --backend-store-uri {tracking}")
    lines.append(f"  versions:      zenml model version list --model {project.model_name}")
    lines.append(f"  dashboard:     {workspace.dashboard_hint(run.id)}")
    print("\n".join(lines))
    return 0


def main_job(args: argparse.Namespace) -> int:
    """The default: the default partner trains on the example data, on its own stack."""
    project = project_of(args)
    train_args = argparse.Namespace(project=project_path(args), data=None, data_bundle=None, config=None,
                                    no_cache=False, partner=project.default_partner, stack=None)
    return train(train_args)
