"""``python run.py``: the one entry point, a thin layer over the library and the pipelines.

Heavy imports (ZenML, scikit-learn, MLflow) happen inside the commands, so
``--help`` and input errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from cli.workspace import ROOT, Collaboration, prepare_environment
from collabops.errors import CollabopsError, ConfigError

DEFAULT_TRAINING_CONFIG = ROOT / "configs" / "training.yaml"


def _stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partner", help="run as this partner, on its stack (see configs/collaboration.yaml)")
    parser.add_argument("--stack", help="run on this registered ZenML stack (default: the active stack)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="collabops: reproducible university-industry ML collaboration on ZenML stacks. "
                    "Without a command, runs the main job: the training loop on the example data, "
                    "as the university partner, on the embedded default stack.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="run the training pipeline",
                                description="Validate, split, train, evaluate, track in MLflow, "
                                            "create a model version and promote it if it wins.")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="CSV or Parquet file (default: the example generator's data)")
    source.add_argument("--data-bundle", type=Path, help="a data bundle from the industry partner (verified first)")
    train.add_argument("--config", type=Path, default=DEFAULT_TRAINING_CONFIG,
                       help="ZenML run configuration (default: configs/training.yaml)")
    train.add_argument("--no-cache", action="store_true", help="run every step, even if cached")
    _stack_options(train)

    stacks = commands.add_parser("stacks", help="register or update every stack in stacks/",
                                 description="Initialise the ZenML repository and register every "
                                             "stack in stacks/ (idempotent, never prompts).")
    stacks.add_argument("--partner", help="then make this partner's stack the active stack")
    stacks.add_argument("--stack", help="then make this stack the active stack")

    from cli.exchange import add_exchange_commands

    add_exchange_commands(commands, _stack_options)
    from cli.deployment import add_deployment_commands

    add_deployment_commands(commands, _stack_options)

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
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    prepare_environment()
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate-data":
            return generate_data(args)
        if args.command == "stacks":
            return stacks(args)
        if args.command == "train":
            return train(args)
        if args.command in ("keys", "verify", "export-data", "handover", "import-model", "infer"):
            from cli import exchange

            return exchange.dispatch(args)
        if args.command in ("deploy", "approve", "rollback", "undeploy", "status"):
            from cli import deployment

            return deployment.dispatch(args)
        return main_job()
    except CollabopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def generate_data(args: argparse.Namespace) -> int:
    from collabops.data.dataset import write_table
    from collabops.data.generator import GeneratorSettings, generate

    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out}: already exists (use --force to overwrite)")
    if args.months < 1 or args.car_parks < 1:
        raise ConfigError("--months and --car-parks must be at least 1")
    if args.start:
        _check_date(args.start)
    settings = GeneratorSettings(months=args.months, seed=args.seed, start=args.start,
                                 car_parks=args.car_parks, drift=args.drift)
    print(f"generating {settings.months} month(s) of hourly data for {settings.car_parks} car parks "
          f"from {settings.start_date.date()} (seed {settings.seed}{', drift' if settings.drift else ''}) ...")
    frame = generate(settings)
    write_table(frame, args.out)
    print(f"wrote {len(frame):,} rows to {args.out}")
    return 0


def _check_date(text: str) -> None:
    import datetime as dt

    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--start '{text}' is not a date (use YYYY-MM-DD)") from None


def stacks(args: argparse.Namespace) -> int:
    from cli import workspace

    collaboration = _setup(announce=True)
    if args.partner or args.stack:
        chosen, _ = workspace.select_stack(collaboration, args.partner, args.stack)
        workspace.activate(chosen)
        print(f"active stack: {chosen}")
    return 0


def _setup(announce: bool = False) -> Collaboration:
    """Initialise the repository and register the stacks; on a fresh clone, activate the default partner's stack."""
    from cli import workspace

    collaboration = Collaboration.load()
    created = workspace.ensure_repository()
    results = workspace.register_stacks()
    for name, status in results:
        if announce or status != "up to date":
            print(f"stack {name}: {status}")
    if created:
        default_stack = collaboration.stack_of(collaboration.default_partner)
        workspace.activate(default_stack)
        print(f"initialised the ZenML repository in {ROOT}; active stack: {default_stack}")
    return collaboration


def load_run_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: training config not found")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("parameters"), dict):
        raise ConfigError(f"{path}: needs a 'parameters' mapping (see configs/training.yaml)")
    return config


def preflight(data: Path, parameters: dict[str, Any]) -> None:
    """Check the data as the pipeline will, before a run (and a model version) exists.

    Bad input is refused in about a second with the same message the
    pipeline would give, and nothing is recorded.
    """
    from collabops.data.contract import load_contract
    from collabops.data.dataset import read_table
    from collabops.data.split import SplitSettings, time_split

    contract = load_contract(parameters["contract_path"])
    split = SplitSettings.from_dict(parameters.get("split"))
    frame = contract.validate(read_table(data), source=str(data))
    contract.check_trainable(frame, source=str(data))
    time_split(frame, contract.time_column, split, source=str(data))


def train(args: argparse.Namespace) -> int:
    config = load_run_config(args.config)
    parameters = config["parameters"]
    parameters["contract_path"] = str(_resolve(parameters.get("contract_path", "configs/contract.yaml")))
    if args.data is not None:
        preflight(args.data, parameters)
        parameters["data_path"] = str(args.data.resolve())

    from cli import workspace

    collaboration = _setup()
    parameters.setdefault("model_name", collaboration.model_name)
    stack, partner = workspace.select_stack(collaboration, args.partner, args.stack)
    if args.data_bundle is not None:
        from cli.exchange import preflight_bundle

        preflight_bundle(args.data_bundle, "data", parameters["contract_path"], collaboration, partner)
        parameters.update(data_bundle=str(args.data_bundle.resolve()), keys_dir=str(collaboration.keys_dir),
                          partner=partner)
    parameters["experiment_tracker"] = workspace.experiment_tracker_name()
    parameters["code_revision"] = workspace.code_revision()
    if args.no_cache:
        config["enable_cache"] = False
    print(f"training as partner '{partner or 'unknown'}' on stack '{stack}' with data from "
          f"{parameters.get('data_bundle') or parameters.get('data_path') or 'the example generator'}")

    from pipelines.training import training_pipeline

    run = run_pipeline(training_pipeline, config, partner)
    if run is None:
        return 1
    print_summary(run, stack, partner)
    return 0


def run_pipeline(pipeline: Any, config: dict[str, Any], partner: Optional[str]) -> Any:
    """Run ``pipeline`` with ``config`` as its run configuration; None if a step failed.

    A failure caused by the user's input is re-raised as that error, so the
    CLI prints its message; anything else is reported with its type.
    """
    config["tags"] = list(config.get("tags") or []) + ([f"partner:{partner}"] if partner else [])
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / "run.yaml"
        merged.write_text(yaml.safe_dump(config), encoding="utf-8")
        try:
            return pipeline.with_options(config_path=str(merged))()
        except CollabopsError:
            raise
        except Exception as exc:  # a failed step: ZenML has logged the details above
            cause = _collabops_cause(exc)
            if cause is not None:
                raise cause from None
            message = _failed_step_message(pipeline.name)
            if message is not None:
                raise CollabopsError(message) from None
            print(f"error: the {pipeline.name} run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return None


def _failed_step_message(pipeline_name: str) -> Optional[str]:
    """The message of a user-facing error raised in a step of the latest run, as ZenML recorded it."""
    from zenml.client import Client

    runs = Client().list_pipeline_runs(pipeline_name=pipeline_name, sort_by="desc:created", size=1).items
    for step_run in (runs[0].steps.values() if runs else []):
        info = step_run.exception_info
        if info is not None and info.source and info.source.startswith("collabops.") and info.message:
            return info.message
    return None


def _collabops_cause(exc: BaseException) -> Optional[CollabopsError]:
    seen = exc
    while seen is not None:
        if isinstance(seen, CollabopsError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _resolve(path: str) -> Path:
    """Relative paths in a config are relative to the project root."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else (ROOT / candidate).resolve()


def print_summary(run: Any, stack: str, partner: Optional[str]) -> None:
    from zenml.client import Client

    run = Client().get_pipeline_run(run.id)
    promote = run.steps.get("promote_model")
    decision = promote.outputs["promotion_decision"][0].load() if promote else {}
    version = promote.model_version if promote else None
    metrics = run.steps["evaluate_models"].outputs["test_metrics"][0].load()
    baseline = run.steps["evaluate_models"].outputs["baseline_test_metrics"][0].load()
    active_stack = Client().active_stack
    tracker = active_stack.experiment_tracker
    overall, base = metrics["overall"], baseline["overall"]
    lines = [
        "",
        f"Training run '{run.name}' finished: {run.status.value} (stack '{stack}', partner '{partner or '-'}')",
        f"  test period:   MAE {overall['mae']:.4f}  RMSE {overall['rmse']:.4f}  R² {overall['r2']:.3f}"
        f"   (baseline MAE {base['mae']:.4f})",
    ]
    if version is not None:
        lines.append(f"  model version: {version.model.name} version {version.name}"
                     f" (stage: {Client().get_model_version(version.model.name, version.id).stage or 'none'})")
    if decision:
        lines.append(f"  decision:      {decision['reason']}")
    lines.append(f"  artifacts:     {active_stack.artifact_store.path}")
    if tracker is not None:
        lines.append(f"  MLflow UI:     mlflow ui --backend-store-uri {tracker.get_tracking_uri()}")
    if version is not None:
        lines.append(f"  versions:      zenml model version list --model {version.model.name}")
    store = Client().zen_store
    if store.type.value == "rest":
        lines.append(f"  dashboard:     {store.url}/runs/{run.id}")
    else:
        lines.append("  dashboard:     zenml login --local   (then open http://127.0.0.1:8237; "
                     "zenml logout --local stops it)")
    print("\n".join(lines))


def main_job() -> int:
    """The default: the university trains on the example data on its local stack."""
    collaboration = Collaboration.load()
    args = build_parser().parse_args(["train"])
    args.partner = collaboration.default_partner
    return train(args)
