"""Model versions: resolving what a user names, their metadata, and lineage back to the export.

A user names a version as ``staging``, ``production``, a number, or
``latest-imported`` (the newest version imported from a model bundle).
Lineage is read from what the version records: an imported version records
the data bundle its model was trained on, and the export that wrote that
bundle tagged the acceptance holdout it kept back with the same bundle id
(``data-bundle:<id>``), so the gate's holdout is one query away, never a scan
over runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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
