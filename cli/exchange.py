"""The commands at the partner boundary: keys, verify, export-data, handover, import-model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, Optional

from cli.workspace import ROOT, Collaboration
from collabops.errors import ConfigError

CONTRACT = ROOT / "configs" / "contract.yaml"


def add_exchange_commands(commands: Any, stack_options: Callable[[argparse.ArgumentParser], None]) -> None:
    keys = commands.add_parser("keys", help="manage this partner's signing key pair")
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", required=True)
    init = keys_commands.add_parser("init", help="create a partner's Ed25519 key pair",
                                    description="Private key outside the repository (mode 0600), "
                                                "public key in keys/<partner>.pub for the other partner to trust.")
    init.add_argument("--partner", required=True, help="the partner the key pair belongs to")
    init.add_argument("--private-key", type=Path, help="where to write the private key "
                                                       "(default: ~/.config/collabops/keys/<partner>.key)")
    init.add_argument("--force", action="store_true", help="replace an existing key pair")

    verify = commands.add_parser("verify", help="verify a bundle and print its manifest")
    verify.add_argument("path", type=Path, help="bundle folder or .tar.gz")

    export = commands.add_parser("export-data", help="industry: export a signed, pseudonymised data bundle",
                                 description="Validate, keep an acceptance holdout, pseudonymise personal "
                                             "columns, profile, write and sign a data bundle.")
    export.add_argument("--data", type=Path, required=True, help="raw CSV or Parquet file")
    export.add_argument("--out", type=Path, required=True, help="exchange folder to write the bundle into")
    export.add_argument("--private-key", type=Path, help="signing key (default: the partner's key location)")
    export.add_argument("--archive", action="store_true", help="also write the bundle as one .tar.gz")
    stack_options(export)

    handover = commands.add_parser("handover", help="university: hand over a model version as a signed bundle")
    handover.add_argument("--version", default="staging", help="model version: staging, production or a number")
    handover.add_argument("--out", type=Path, required=True, help="exchange folder to write the bundle into")
    handover.add_argument("--private-key", type=Path, help="signing key (default: the partner's key location)")
    handover.add_argument("--archive", action="store_true", help="also write the bundle as one .tar.gz")
    stack_options(handover)

    infer = commands.add_parser("infer", help="industry: score a file with a model version",
                                description="Validate the file against the contract, score it in chunks and "
                                            "write predictions with the model version and bundle id on every row.")
    infer.add_argument("--data", type=Path, required=True, help="CSV or Parquet file to score")
    infer.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet (never overwritten)")
    infer.add_argument("--version", default="production", help="model version: production (default), staging or N")
    stack_options(infer)

    importer = commands.add_parser("import-model", help="industry: verify a model bundle and register it")
    importer.add_argument("path", type=Path, help="model bundle folder or .tar.gz")
    stack_options(importer)


def dispatch(args: argparse.Namespace) -> int:
    return {"keys": keys_init, "verify": verify, "export-data": export_data, "handover": handover,
            "import-model": import_model, "infer": infer}[args.command](args)


def keys_init(args: argparse.Namespace) -> int:
    from collabops.exchange.signing import default_private_key_path, generate_key_pair

    collaboration = Collaboration.load()
    collaboration.stack_of(args.partner)  # refuses unknown partners
    private = (args.private_key or default_private_key_path(args.partner)).expanduser().resolve()
    if private.is_relative_to(ROOT):
        raise ConfigError(f"{private}: a private key must live outside the repository ({ROOT})")
    public = collaboration.keys_dir / f"{args.partner}.pub"
    generate_key_pair(private, public, args.partner, force=args.force)
    print(f"private key: {private} (mode 0600; keep it secret, back it up)")
    print(f"public key:  {public} (commit it, so the other partner trusts your bundles)")
    return 0


def verify(args: argparse.Namespace) -> int:
    from collabops.exchange.bundle import open_bundle
    from collabops.exchange.signing import trusted_keys

    collaboration = Collaboration.load()
    with open_bundle(args.path, trusted_keys(collaboration.keys_dir)) as bundle:
        print(json.dumps(bundle.manifest, indent=2))
        print(f"verified: {bundle.kind} bundle {bundle.bundle_id}, signed by '{bundle.signer}', "
              f"{len(bundle.manifest['files'])} file(s) checked")
    return 0


def preflight_bundle(path: Path, kind: str, contract_path: str, collaboration: Collaboration,
                     partner: Optional[str]) -> None:
    """Verify before any run starts, so a bad bundle never creates a run or a model version."""
    from collabops.exchange.bundle import open_bundle
    from collabops.data.contract import load_contract
    from collabops.exchange.signing import trusted_keys

    if not path.exists():
        raise ConfigError(f"{path}: bundle not found")
    keys = trusted_keys(collaboration.keys_dir, exclude=[partner] if partner else [])
    with open_bundle(path, keys, kind=kind, contract=load_contract(contract_path)) as bundle:
        print(f"verified {kind} bundle {bundle.bundle_id} signed by '{bundle.signer}'")


def _prepare(args: argparse.Namespace, natural_partner: str) -> tuple[Collaboration, str, str]:
    from cli import workspace
    from cli.main import _setup

    collaboration = _setup()
    partner = args.partner or (None if args.stack else natural_partner)
    stack, partner = workspace.select_stack(collaboration, partner, args.stack)
    if partner is None:
        raise ConfigError(f"stack '{stack}' belongs to no partner; say which with --partner")
    return collaboration, stack, partner


def _signing_parameters(args: argparse.Namespace, partner: str) -> dict[str, Any]:
    """Where the bundle goes and who signs it: the key's path, never the key."""
    from cli import workspace

    return {"out_dir": str(args.out.resolve()), "partner": partner,
            "private_key": str(args.private_key.resolve()) if args.private_key else None,
            "code_revision": workspace.code_revision()}


def export_data(args: argparse.Namespace) -> int:
    from cli.main import preflight, run_pipeline
    from collabops.exchange.pseudonymise import load_key
    from collabops.exchange.signing import load_signer

    parameters = {"contract_path": str(CONTRACT), "split": {}}
    preflight(args.data, parameters)
    collaboration, stack, partner = _prepare(args, "industry")
    exchange = collaboration.exchange
    key_env = str(exchange.get("pseudonymisation_key_env", "COLLABOPS_PSEUDONYMISATION_KEY"))
    key_file = str(exchange.get("pseudonymisation_key_file", "~/.config/collabops/pseudonymisation.key"))
    load_key(key_env, Path(key_file).expanduser())
    load_signer(partner, args.private_key)
    print(f"exporting data as partner '{partner}' on stack '{stack}' from {args.data}")
    from pipelines.exchange import export_data_pipeline

    config = {"parameters": {
        "contract_path": str(CONTRACT), "data_path": str(args.data.resolve()),
        "holdout_fraction": float(exchange.get("holdout_fraction", 0.1)), "key_env": key_env, "key_file": key_file,
        **_signing_parameters(args, partner)}}
    run = run_pipeline(export_data_pipeline, config, partner)
    if run is None:
        return 1
    manifest = _output(run, "write_data_bundle_step", "bundle_manifest")
    holdout = run.steps["hold_out_acceptance"].run_metadata
    path = _maybe_archive(args, _output_metadata(run, "write_data_bundle_step", "bundle_path"))
    print(f"\ndata bundle {manifest['bundle_id']}: {manifest['rows']:,} pseudonymised rows -> {path}")
    print(f"acceptance holdout kept on this side: {holdout.get('holdout_rows'):,} rows "
          f"from {holdout.get('holdout_start')} (artifact 'acceptance_holdout' of run {run.name})")
    return 0


def handover(args: argparse.Namespace) -> int:
    from cli.main import run_pipeline
    from collabops.exchange.signing import load_signer

    collaboration, stack, partner = _prepare(args, "university")
    load_signer(partner, args.private_key)
    from zenml.client import Client

    version = str(args.version)
    try:
        chosen = Client().get_model_version(collaboration.model_name, int(version) if version.isdigit() else version)
    except (KeyError, ValueError):
        raise ConfigError(f"model '{collaboration.model_name}' has no version '{version}' on stack '{stack}' "
                          "(train one with `python run.py train`)") from None
    print(f"handing over {collaboration.model_name} version {chosen.name} as partner '{partner}' from stack '{stack}'")
    from pipelines.exchange import handover_pipeline

    config = {"parameters": {"model_name": collaboration.model_name, "version": str(chosen.name),
                             "owners": collaboration.owners, **_signing_parameters(args, partner)}}
    run = run_pipeline(handover_pipeline, config, partner)
    if run is None:
        return 1
    manifest = _output(run, "write_model_bundle_step", "bundle_manifest")
    path = _maybe_archive(args, _output_metadata(run, "write_model_bundle_step", "bundle_path"))
    print(f"\nmodel bundle {manifest['bundle_id']} -> {path}")
    return 0


def import_model(args: argparse.Namespace) -> int:
    from cli.main import run_pipeline

    collaboration, stack, partner = _prepare(args, "industry")
    preflight_bundle(args.path, "model", str(CONTRACT), collaboration, partner)
    from pipelines.exchange import import_model_pipeline

    config = {"parameters": {"contract_path": str(CONTRACT), "bundle_path": str(args.path.resolve()),
                             "model_name": collaboration.model_name, "keys_dir": str(collaboration.keys_dir),
                             "partner": partner}}
    run = run_pipeline(import_model_pipeline, config, partner)
    if run is None:
        return 1
    from zenml.client import Client

    run = Client().get_pipeline_run(run.id)
    version = run.steps["register_imported_model"].model_version
    manifest = _output(run, "verify_model_bundle", "bundle_manifest")
    print(f"\nimported bundle {manifest['bundle_id']} from '{manifest['producer']['partner']}' as "
          f"{version.model.name} version {version.name} on stack '{stack}'")
    return 0


def infer(args: argparse.Namespace) -> int:
    from cli.main import run_pipeline
    from collabops.data.dataset import SUFFIXES, check_readable

    check_readable(args.data)  # a missing or empty file is refused before any run exists
    if args.out.exists():
        raise ConfigError(f"{args.out}: already exists; choose another output path")
    if SUFFIXES.get(args.out.suffix.lower()) is None:
        raise ConfigError(f"{args.out}: unsupported output type '{args.out.suffix}' (use .csv or .parquet)")
    collaboration, stack, partner = _prepare(args, "industry")
    from zenml.client import Client

    version = str(args.version)
    try:
        chosen = Client().get_model_version(collaboration.model_name, int(version) if version.isdigit() else version)
    except (KeyError, ValueError):
        raise ConfigError(f"model '{collaboration.model_name}' has no version '{version}' on stack '{stack}'") from None
    from pipelines.exchange import batch_inference_pipeline

    config = {"parameters": {"contract_path": str(CONTRACT), "model_name": collaboration.model_name,
                             "version": str(chosen.name), "data_path": str(args.data.resolve()),
                             "out_path": str(args.out.resolve())}}
    print(f"scoring {args.data} with {collaboration.model_name} version {chosen.name} on stack '{stack}'")
    run = run_pipeline(batch_inference_pipeline, config, partner)
    if run is None:
        return 1
    summary = _output(run, "score_batch", "scoring_summary")
    print(f"\nwrote {summary['rows']:,} predictions to {args.out} (model version {summary['model_version']}, "
          f"bundle {summary['bundle_id']})")
    return 0


def _maybe_archive(args: argparse.Namespace, folder: str) -> str:
    """With --archive, pack the sealed folder as ``<folder>.tar.gz`` next to it."""
    if not args.archive:
        return folder
    from collabops.exchange.bundle import archive

    packed = archive(Path(folder), Path(f"{folder}.tar.gz"))
    return f"{folder} and {packed}"


def _output(run: Any, step: str, name: str) -> Any:
    from zenml.client import Client

    return Client().get_pipeline_run(run.id).steps[step].outputs[name][0].load()


def _output_metadata(run: Any, step: str, key: str) -> Any:
    from zenml.client import Client

    return Client().get_pipeline_run(run.id).steps[step].run_metadata.get(key)
