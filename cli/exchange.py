"""The commands at the partner boundary: keys, verify, export-data, handover, import-model, infer."""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.common import check_writable_path, project_of, project_option, stack_options
from collabops.errors import ConfigError
from collabops.settings import ProjectSettings

if TYPE_CHECKING:  # the exchange library loads with the commands that use it
    from collabops.exchange.bundle import VerifiedBundle
    from collabops.exchange.model_bundle import ReplayCheck


def add_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="manage this partner's signing key pair")
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", required=True)
    init = keys_commands.add_parser("init", help="create a partner's Ed25519 key pair",
                                    description="Private key outside the repository (mode 0600), "
                                                "public key in keys/<partner>.pub for the other partner to trust.")
    init.add_argument("--partner", required=True, help="the partner the key pair belongs to")
    init.add_argument("--private-key", type=Path, help="where to write the private key "
                                                       "(default: ~/.config/collabops/keys/<partner>.key)")
    init.add_argument("--force", action="store_true", help="replace an existing key pair")
    project_option(init)

    verify = commands.add_parser("verify", help="verify a bundle as its receiving command would, print its manifest",
                                 description="Every check the receiving command runs before anything exists "
                                             "(import-model for a model bundle, train --data-bundle for a data "
                                             "bundle): ceilings, signature, manifest schema, files, contract, "
                                             "required files; for a model bundle also loading the model with the "
                                             "trusted types and re-predicting its reference sample.")
    verify.add_argument("path", type=Path, help="bundle folder or .tar.gz")
    verify.add_argument("--partner", help="check as this partner receives it: its own key does not count "
                                          "(default: industry for a model bundle, university for a data bundle)")
    project_option(verify)

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


def keys_init(args: argparse.Namespace) -> int:
    from collabops.exchange.signing import default_private_key_path, generate_key_pair

    project = project_of(args)
    project.stack_of(args.partner)  # refuses unknown partners
    private = (args.private_key or default_private_key_path(args.partner)).expanduser().resolve()
    if private.is_relative_to(project.root):
        raise ConfigError(f"{private}: a private key must live outside the repository ({project.root})")
    public = project.keys_dir / f"{args.partner}.pub"
    generate_key_pair(private, public, args.partner, force=args.force)
    print(f"private key: {private} (mode 0600; keep it secret, back it up)")
    print(f"public key:  {public} (commit it, so the other partner trusts your bundles)")
    return 0


RECEIVING_PARTNER = {"model": "industry", "data": "university"}
"""Who receives each kind of bundle unless told otherwise: import-model's partner and train's."""


def verify(args: argparse.Namespace) -> int:
    """Run every check the receiving command runs, touching no store; print the manifest, what passed and a data
    bundle's retraining request."""
    from collabops.data.contract import load_contract
    from collabops.exchange.bundle import Limits, open_bundle
    from collabops.exchange.data_bundle import describe_retraining_request, retraining_request
    from collabops.exchange.signing import trusted_keys

    project = project_of(args)
    if args.partner:
        project.stack_of(args.partner)  # refuses an unknown partner
    if not args.path.exists():
        raise ConfigError(f"{args.path}: bundle not found")
    receiver = args.partner or {kind: p for kind, p in RECEIVING_PARTNER.items() if p in project.partners}
    with open_bundle(args.path, trusted_keys(project.keys_dir), contract=load_contract(project.contract_path),
                     limits=Limits.of(project.exchange), partner=receiver) as bundle:
        replay = _accept_model(bundle, project)[1] if bundle.kind == "model" else None
        print(json.dumps(bundle.manifest, indent=2))
        print(f"verified: {bundle.kind} bundle {bundle.bundle_id}, signed by '{bundle.signer}', "
              f"{len(bundle.manifest['files'])} file(s) checked")
        if replay is not None:
            print(f"model: loads with the trusted types only, and re-predicts its {replay.rows}-row reference sample "
                  f"within {replay.tolerance:g} (largest difference {replay.max_difference:.3g})")
        request = retraining_request(bundle) if bundle.kind == "data" else None
        if request is not None:
            print("\n".join(describe_retraining_request(request, requested_by=bundle.signer)))
    return 0


def _accept_model(bundle: VerifiedBundle, project: ProjectSettings) -> tuple[Any, ReplayCheck]:
    """A verified model bundle's model, loaded with the trusted types only, after it re-predicted its reference sample.

    Raises ``BundleError`` naming the bundle as the user named it (never the
    temporary folder an archive is read from), for any failure of either.
    """
    from collabops.exchange.bundle import reported_as
    from collabops.exchange.model_bundle import MODEL_FILE, SAMPLE_FILE, check_reference_predictions, load_model

    with reported_as(bundle, "trusted types", f"loading {MODEL_FILE} with the trusted types"):
        model = load_model(bundle)
    with reported_as(bundle, "reference predictions", f"re-predicting {SAMPLE_FILE}"):
        replay = check_reference_predictions(bundle, model, project.exchange.prediction_tolerance)
    return model, replay


def _signing_parameters(args: argparse.Namespace, partner: str) -> dict[str, Any]:
    """Where the bundle goes and who signs it: the key's path, never the key."""
    from orchestration import workspace

    return {"out_dir": str(args.out.resolve()), "partner": partner,
            "private_key": str(args.private_key.resolve()) if args.private_key else None,
            "code_revision": workspace.code_revision()}


def _pseudonymisation_key_check(project: ProjectSettings) -> None:
    """Read the pseudonymisation key now (and refuse clearly) only when the contract has personal columns."""
    from collabops.data.contract import load_contract
    from collabops.exchange.pseudonymise import load_key

    if load_contract(project.contract_path).personal_columns:
        load_key(project.exchange.pseudonymisation_key_env, project.pseudonymisation_key_path)


def export_data(args: argparse.Namespace) -> int:
    from cli.training import preflight
    from collabops.exchange.signing import load_signer
    from orchestration import names, workspace
    from orchestration.runs import run_pipeline

    project = project_of(args)
    if args.partner:
        project.stack_of(args.partner)  # refuses an unknown partner first
    preflight(project, args.data)
    check_writable_path(args.out, folder=True)
    _pseudonymisation_key_check(project)  # keys are refused before the store is touched
    load_signer(args.partner or "industry", args.private_key)
    stack, partner = workspace.use_stack(project, args.partner, args.stack, natural_partner="industry")
    assert partner is not None
    load_signer(partner, args.private_key)
    exchange = project.exchange
    print(f"exporting data as partner '{partner}' on stack '{stack}' from {args.data}")
    config = {"parameters": {
        "contract_path": str(project.contract_path), "data_path": str(args.data.resolve()),
        "bundle_id": str(uuid.uuid4()), "holdout_fraction": exchange.holdout_fraction,
        "key_env": exchange.pseudonymisation_key_env, "key_file": str(project.pseudonymisation_key_path),
        "max_days_ahead": project.data.max_days_ahead, **_signing_parameters(args, partner)}}
    run = run_pipeline(names.EXPORT_DATA, config, partner)
    manifest = run.output(names.BUNDLE_MANIFEST)
    holdout = run.metadata(names.ACCEPTANCE_HOLDOUT)
    path = _maybe_archive(args, run.metadata(names.DATA_BUNDLE)["bundle_path"])
    print(f"\ndata bundle {manifest['bundle_id']}: {manifest['rows']:,} pseudonymised rows -> {path}")
    print(f"acceptance holdout kept on this side: {holdout.get('holdout_rows'):,} rows "
          f"from {holdout.get('holdout_start')} (artifact '{names.ACCEPTANCE_HOLDOUT}' of run {run.name})")
    return 0


def handover(args: argparse.Namespace) -> int:
    from collabops.exchange.signing import load_signer
    from orchestration import models, names, workspace
    from orchestration.runs import run_pipeline

    project = project_of(args)
    check_writable_path(args.out, folder=True)
    stack, partner = workspace.use_stack(project, args.partner, args.stack, natural_partner="university")
    assert partner is not None
    load_signer(partner, args.private_key)
    chosen = models.resolve(project.model_name, str(args.version), stack)
    if chosen.imported_bundle_id:
        raise ConfigError(f"{project.model_name} version {chosen.number} was imported from bundle "
                          f"{chosen.imported_bundle_id}, not trained on this stack; hand over a version trained here "
                          "(`zenml model version list` shows them)")
    print(f"handing over {project.model_name} version {chosen.number} as partner '{partner}' from stack '{stack}'")
    config = {"parameters": {"model_name": project.model_name, "version": chosen.number,
                             "owners": project.owners, "description": project.description,
                             **_signing_parameters(args, partner)}}
    run = run_pipeline(names.HANDOVER, config, partner)
    manifest = run.output(names.BUNDLE_MANIFEST)
    path = _maybe_archive(args, run.metadata(names.MODEL_BUNDLE)["bundle_path"])
    print(f"\nmodel bundle {manifest['bundle_id']} -> {path}")
    return 0


def import_model(args: argparse.Namespace) -> int:
    """Verify, load and replay the bundle before the store is touched; then register it once per bundle id."""
    from collabops.data.contract import load_contract
    from collabops.exchange.bundle import Limits, open_bundle
    from collabops.exchange.signing import trusted_keys
    from orchestration import models, names, workspace
    from orchestration.runs import run_pipeline

    project = project_of(args)
    if args.partner:
        project.stack_of(args.partner)  # refuses an unknown partner first
    if not args.path.exists():
        raise ConfigError(f"{args.path}: bundle not found")
    receiver = args.partner or (project.partner_of(args.stack) if args.stack else "industry")
    with open_bundle(args.path, trusted_keys(project.keys_dir), kind="model",
                     contract=load_contract(project.contract_path), limits=Limits.of(project.exchange),
                     command="import-model", partner=receiver) as bundle:
        _, replay = _accept_model(bundle, project)
        print(f"verified model bundle {bundle.bundle_id} signed by '{bundle.signer}'; its model loads with the "
              f"trusted types and re-predicts its {replay.rows}-row reference sample within {replay.tolerance:g}")
        stack, partner = workspace.use_stack(project, args.partner, args.stack, natural_partner="industry")
        earlier = models.imported_from(project.model_name, bundle.bundle_id)
        if earlier is not None:
            print(f"bundle {bundle.bundle_id} is already imported as {project.model_name} version {earlier.number} "
                  f"on stack '{stack}'; nothing changed")
            return 0
        produced_for = str((bundle.manifest.get("model") or {}).get("name") or "")
        if produced_for and produced_for != project.model_name:
            print(f"note: the bundle holds a version of model '{produced_for}'; it is registered as a version of "
                  f"this project's model '{project.model_name}' ({project.source})")
        config = {"parameters": {"bundle_dir": str(bundle.root), "manifest": bundle.manifest,
                                 "signer": bundle.signer, "model_name": project.model_name,
                                 "model_description": project.description}}
        run = run_pipeline(names.IMPORT_MODEL, config, partner)
    manifest = run.output(names.BUNDLE_MANIFEST)
    version = run.model_version
    print(f"\nimported bundle {manifest['bundle_id']} from '{manifest['producer']['partner']}' as "
          f"{project.model_name} version {version.name} on stack '{stack}'")
    return 0


def infer(args: argparse.Namespace) -> int:
    from collabops.data.dataset import SUFFIXES, check_readable
    from orchestration import models, names, workspace
    from orchestration.runs import run_pipeline

    project = project_of(args)
    check_readable(args.data)  # a missing or empty file is refused before any run exists
    if args.out.exists():
        raise ConfigError(f"{args.out}: already exists; choose another output path")
    check_writable_path(args.out)
    if SUFFIXES.get(args.out.suffix.lower()) is None:
        raise ConfigError(f"{args.out}: unsupported output type '{args.out.suffix}' (use .csv or .parquet)")
    stack, partner = workspace.use_stack(project, args.partner, args.stack, natural_partner="industry")
    chosen = models.resolve(project.model_name, str(args.version), stack)
    config = {"parameters": {"contract_path": str(project.contract_path), "model_name": project.model_name,
                             "version": chosen.number, "data_path": str(args.data.resolve()),
                             "out_path": str(args.out.resolve())}}
    print(f"scoring {args.data} with {project.model_name} version {chosen.number} on stack '{stack}'")
    run = run_pipeline(names.BATCH_INFERENCE, config, partner)
    summary = run.output(names.SCORING_SUMMARY)
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
