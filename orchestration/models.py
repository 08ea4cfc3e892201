"""Model versions: resolving what a user names, their metadata, lineage back to the export, production history.

A user names a version as ``staging``, ``production``, a number, or
``latest-imported`` (the newest version imported from a model bundle).
Lineage is read from what the version records: an imported version records
the data bundle its model was trained on, and the export that wrote that
bundle tagged the acceptance holdout it kept back with the same bundle id
(``data-bundle:<id>``), so the gate's holdout is one query away, never a scan
over runs; the rows that export wrote into the bundle (its
``exportable_data``, which the gate fits the seasonal baseline on) are the
other output of the step that kept the holdout.

Production history: each deployment records (``deployment`` metadata of the
version it put in production) the versions production served before it,
oldest first, without the versions that were rolled away from
(:func:`history_after`); a rollback goes to the last of them
(:func:`rollback_target`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collabops.errors import ConfigError
from orchestration import names

STAGES = ("staging", "production")


@dataclass(frozen=True)
class ModelVersionInfo:
    """What the CLI needs of a model version, without ZenML types."""

    model_name: str
    number: str
    id: str
    stage: str | None
    metadata: dict[str, Any]

    @property
    def imported_bundle_id(self) -> str | None:
        value = self.metadata.get(names.IMPORTED_BUNDLE_ID)
        return str(value) if value else None


def _info(version: Any) -> ModelVersionInfo:
    stage = version.stage.value if hasattr(version.stage, "value") else version.stage
    return ModelVersionInfo(model_name=version.model.name, number=str(version.name), id=str(version.id),
                            stage=str(stage) if stage and str(stage) != "None" else None,
                            metadata=dict(version.run_metadata or {}))


def resolve(model_name: str, wanted: str, stack: str) -> ModelVersionInfo:
    """``wanted`` (``staging``, ``production``, ``latest-imported`` or a number) as a version of ``model_name``.

    Raises ``ConfigError`` naming the model, what was asked for and the stack,
    and how to get such a version.
    """
    from zenml.client import Client

    wanted = str(wanted).strip()
    client = Client()
    if wanted == names.LATEST_IMPORTED:
        return latest_imported(model_name, stack)
    if not (wanted.isdigit() or wanted in STAGES):
        raise ConfigError(f"version '{wanted}' is not a version number, {', '.join(STAGES)} or "
                          f"{names.LATEST_IMPORTED}")
    try:
        return _info(client.get_model_version(model_name, int(wanted) if wanted.isdigit() else wanted))
    except (KeyError, ValueError):
        raise ConfigError(f"model '{model_name}' has no version '{wanted}' on stack '{stack}' "
                          "(train one with `python run.py train`, or import one with "
                          "`python run.py import-model BUNDLE`)") from None


def latest_imported(model_name: str, stack: str) -> ModelVersionInfo:
    """The newest version imported from a model bundle (its metadata names the bundle)."""
    from zenml.client import Client

    client = Client()
    try:
        versions = client.list_model_versions(model=model_name, sort_by="desc:number", size=100,
                                              hydrate=True).items
    except KeyError:
        versions = []
    for version in versions:
        if names.IMPORTED_BUNDLE_ID in (version.run_metadata or {}):
            return _info(version)
    raise ConfigError(f"model '{model_name}' has no imported version on stack '{stack}' "
                      "(import one with `python run.py import-model BUNDLE`)")


def imported_from(model_name: str, bundle_id: str) -> ModelVersionInfo | None:
    """The version already imported from bundle ``bundle_id``, or None."""
    from zenml.client import Client

    try:
        versions = Client().list_model_versions(model=model_name, sort_by="desc:number", size=1000,
                                                hydrate=True).items
    except KeyError:
        return None
    for version in versions:
        if str((version.run_metadata or {}).get(names.IMPORTED_BUNDLE_ID)) == bundle_id:
            return _info(version)
    return None


def production(model_name: str) -> ModelVersionInfo | None:
    """The version in the ``production`` stage, or None."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    try:
        return _info(Client().get_model_version(model_name, ModelStages.PRODUCTION))
    except KeyError:
        return None


def record_approval(version: ModelVersionInfo, by: str, note: str) -> dict[str, str]:
    """Store a human approval on the version (``approval`` metadata); returns it."""
    from zenml import log_metadata

    approval = {"by": by, "note": note, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    log_metadata(metadata={"approval": approval}, model_version_id=version.id)
    return approval


def acceptance_holdout(version: ModelVersionInfo, stack: str) -> tuple[str, str]:
    """The acceptance holdout for ``version``: (artifact version id, how it was found).

    The holdout tagged with the data bundle the model was trained on; if the
    bundle does not say, or no export on this stack wrote that bundle, the
    newest holdout on this stack, and the note says so. Raises
    ``ConfigError`` when there is no holdout at all.
    """
    from zenml.client import Client

    client = Client()
    trained_on = (version.metadata.get("producer_model") or {}).get("training_data_bundle_id")
    if trained_on:
        tagged = client.list_artifact_versions(artifact=names.ACCEPTANCE_HOLDOUT, size=1, sort_by="desc:created",
                                               tags=[names.DATA_BUNDLE_TAG.format(bundle_id=trained_on)]).items
        if tagged:
            return str(tagged[0].id), (f"kept back by the export that wrote data bundle {trained_on}, "
                                       "which the model was trained on")
    try:
        newest = client.list_artifact_versions(artifact=names.ACCEPTANCE_HOLDOUT, size=1,
                                               sort_by="desc:created").items
    except KeyError:
        newest = []
    if not newest:
        raise ConfigError(f"no acceptance holdout on stack '{stack}': the gate needs the rows export-data keeps "
                          "back; run `python run.py export-data --data FILE --out FOLDER` on this stack first")
    note = (f"the model was trained on data bundle {trained_on}, which no export on this stack wrote; "
            if trained_on else "the bundle does not say which data it was trained on; ")
    return str(newest[0].id), note + "using the newest holdout on this stack"


@dataclass(frozen=True)
class TrainingRows:
    """Where the gate finds the rows a model was trained on: the export's rows of the data bundle it names.

    ``artifact_id`` is the export's ``exportable_data`` artifact version
    (before pseudonymisation, so ids match the holdout's); ``period`` is
    None: the baseline is fitted on every exported row, never narrowed to a
    period the producer declares (which the receiver cannot check).
    """

    artifact_id: str
    bundle_id: str
    period: dict[str, Any] | None
    note: str


def training_period_of(version: ModelVersionInfo) -> dict[str, Any] | None:
    """The training period an imported version's bundle names (``model.training_period``), or None."""
    period = (version.metadata.get("producer_model") or {}).get("training_period")
    return dict(period) if isinstance(period, dict) else None


def training_rows(version: ModelVersionInfo, stack: str) -> TrainingRows:
    """The export's rows of the data bundle ``version`` was trained on, on this stack.

    Found from the holdout the export tagged with that bundle's id: the
    step that kept it back also output the rows it exported. Raises
    ``ConfigError`` saying what is missing and how to get it: the bundle
    names no data bundle, no export on this stack wrote that bundle, or the
    export's rows are gone.
    """
    from zenml.client import Client

    client = Client()
    trained_on = (version.metadata.get("producer_model") or {}).get("training_data_bundle_id")
    needed = ("the acceptance gate fits the seasonal baseline on the rows the model was trained on, which only the "
              "export that wrote its data bundle has")
    if not trained_on:
        raise ConfigError(f"model version {version.number} does not say which data bundle it was trained on (its "
                          f"bundle's manifest has no model.training_data_bundle_id); {needed}. Ask the university for "
                          "a bundle made by `python run.py handover` from a model trained with `python run.py train "
                          "--data-bundle DATA_BUNDLE`")
    tagged = client.list_artifact_versions(artifact=names.ACCEPTANCE_HOLDOUT, size=1, sort_by="desc:created",
                                           tags=[names.DATA_BUNDLE_TAG.format(bundle_id=trained_on)]).items
    if not tagged:
        raise ConfigError(f"model version {version.number} was trained on data bundle {trained_on}, which no export "
                          f"on stack '{stack}' wrote; {needed}. Deploy on the stack whose `python run.py export-data` "
                          "wrote that bundle, or export the data on this stack and have the university train on the "
                          "new data bundle")
    step_id = tagged[0].producer_step_run_id
    exported = client.get_run_step(step_id).outputs.get(names.EXPORTABLE_DATA) if step_id else None
    if not exported:
        raise ConfigError(f"the export that wrote data bundle {trained_on} kept its acceptance holdout, but its "
                          f"'{names.EXPORTABLE_DATA}' output (the rows the model was trained on) is gone from stack "
                          f"'{stack}'; {needed}. Export the data again with `python run.py export-data` and have the "
                          "university train on the new data bundle")
    period = training_period_of(version)
    # All of them, whatever period the bundle declares: the producer cannot make the baseline weaker by naming
    # a narrow period, and a baseline fitted on more of the same data is only harder to beat.
    note = (f"all the rows export-data put in data bundle {trained_on}, the one the model was trained on"
            + (f" (the bundle declares the training period {period.get('start')} to {period.get('end')}; the "
               "baseline does not depend on what the producer declares)" if period else ""))
    return TrainingRows(str(exported[0].id), str(trained_on), None, note)


def recorded_history(record: dict[str, Any] | None) -> list[str]:
    """The versions production served before the one ``record`` (its ``deployment`` metadata) put there.

    Oldest first, versions rolled away from left out. A record written
    before histories were kept names only the version it replaced.
    """
    if not record:
        return []
    if isinstance(record.get("history"), list):
        return [str(v) for v in record["history"]]
    replaced = record.get("replaced_version")
    return [str(replaced)] if replaced else []


def history_after(version: str, current: str | None, current_record: dict[str, Any] | None,
                  rolling_back_from: str | None = None) -> list[str]:
    """The production history a deployment of ``version`` records, given the ``current`` production version.

    A new deployment adds the current version to the current history (a
    redeployment of the current version keeps the history as it is). A
    rollback from ``current`` to ``version`` (``rolling_back_from`` =
    ``current``) drops both: ``current`` was rolled away from, and ``version``
    serves again, so the history is what it was before ``version`` was
    replaced. Raises ``ConfigError`` when the rollback does not match the
    history (production changed in between).
    """
    earlier = recorded_history(current_record)
    if rolling_back_from is not None:
        if current != rolling_back_from or not earlier or earlier[-1] != version:
            raise ConfigError(f"production changed during the rollback: production is version {current or 'none'}, "
                              f"not version {rolling_back_from} with version {version} before it; nothing changed. "
                              "Check `python run.py status` and run `python run.py rollback` again")
        return earlier[:-1]
    if current is None:
        return []
    if current == version:
        return earlier
    return [*earlier, current]


def rollback_target(current: ModelVersionInfo) -> str:
    """The version a rollback from the production version ``current`` goes to: the last of its recorded history.

    Raises ``ConfigError`` (one line) when there is nothing older.
    """
    record = current.metadata.get(names.DEPLOYMENT_METADATA) or None
    if record is None:
        raise ConfigError(f"production version {current.number} was not put in production by `python run.py deploy` "
                          "(it has no deployment record); there is no production history to roll back through")
    history = recorded_history(record)
    if history:
        return history[-1]
    if record.get("rolled_back_from"):
        raise ConfigError(f"production version {current.number} is the oldest version left in the production "
                          f"history (versions rolled away from are skipped); there is nothing older to roll back to")
    raise ConfigError(f"production version {current.number} replaced no earlier production version; there is nothing "
                      "to roll back to")


def check_reproducible(version: ModelVersionInfo, keys_dir: Path, tolerance: float) -> float:
    """Re-predict the reference sample of ``version``'s verified bundle with this checkout's code, before any run.

    Returns the largest difference from the producer's predictions; raises
    the exchange layer's ``BundleError`` (naming both revisions and changed
    packages) beyond ``tolerance``, or ``ConfigError`` when the version has no
    verified bundle (it was not imported).
    """
    from zenml.client import Client

    from collabops.exchange.bundle import verify
    from collabops.exchange.model_bundle import check_reference_predictions, load_model
    from collabops.exchange.signing import trusted_keys

    artifact = Client().get_model_version(version.model_name, int(version.number)).get_artifact(
        names.VERIFIED_MODEL_BUNDLE)
    if artifact is None:
        raise ConfigError(f"model version {version.number} has no '{names.VERIFIED_MODEL_BUNDLE}' artifact; import "
                          "its bundle with `python run.py import-model BUNDLE`")
    root = Path(artifact.load())  # a temporary copy: messages name the bundle and version instead
    verified = verify(root, trusted_keys(keys_dir), kind="model",
                      name=Path(f"bundle {version.imported_bundle_id} of model version {version.number}"))
    return check_reference_predictions(verified, load_model(verified), tolerance).max_difference
