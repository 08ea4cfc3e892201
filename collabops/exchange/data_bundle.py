"""The data bundle: pseudonymised data, its contract and its profile.

Written by the industry partner's export, read by the university's training
only after ``collabops.exchange.bundle`` has verified it. A data bundle must
hold :data:`REQUIRED_FILES` and the data file its manifest names
(``data_file``); :func:`check_data_file` is the kind's payload check that
``collabops.exchange.bundle.verify`` runs: the data file is Parquet with the
manifest's row count and exactly the contract's columns.

A bundle the industry's monitoring exports to ask for a new model also
carries a retraining request in its manifest (``retraining_request``, schema
``collabops.exchange.bundle.RetrainingRequest``), so the signature covers it:
:func:`write_data_bundle` checks and writes it, :func:`retraining_request`
reads it from a verified bundle, :func:`describe_retraining_request` words it.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from collabops.data.contract import DataContract
from collabops.data.profile import clock
from collabops.errors import CollabopsError
from collabops.exchange.bundle import (
    CONTRACT_FILE,
    BundleError,
    Producer,
    RetrainingRequest,
    VerifiedBundle,
    describe_validation_error,
    move_into_place,
    seal,
    without_root,
)
from collabops.exchange.signing import Signer

DATA_FOLDER = "data"
PROFILE_FILE = "profile.json"
REQUIRED_FILES = (CONTRACT_FILE, PROFILE_FILE)
"""Every file a data bundle must hold besides its data file (named by the manifest's ``data_file``)."""


def required_files(manifest: dict[str, Any]) -> tuple[str, ...]:
    """:data:`REQUIRED_FILES` and the data file a (schema-checked) data manifest names."""
    return (*REQUIRED_FILES, str(manifest["data_file"]))


class RetrainingRequestError(CollabopsError):
    """A retraining request does not have the shape of :class:`~collabops.exchange.bundle.RetrainingRequest`."""


def checked_retraining_request(request: Any) -> dict[str, Any]:
    """``request`` checked against the schema and returned as the manifest holds it (JSON types, optional fields None).

    Raises :class:`RetrainingRequestError` with one line naming each wrong
    field (``retraining_request.period: starts (...) after it ends (...)``).
    """
    if not isinstance(request, dict):
        raise RetrainingRequestError(f"retraining_request: must be a mapping, got a {type(request).__name__}")
    try:
        return RetrainingRequest.model_validate(request).model_dump(mode="json")
    except ValidationError as exc:
        raise RetrainingRequestError("retraining request refused: "
                                     + describe_validation_error(exc, prefix="retraining_request")) from None


def write_data_bundle(frame: pd.DataFrame, contract: DataContract, profile: dict, producer: Producer,
                      signer: Signer, out_dir: Path, bundle_id: str | None = None,
                      retraining_request: dict | None = None) -> tuple[Path, dict]:
    """Build, seal and move a data bundle to ``out_dir/data-<id>``; never overwrites one. Returns (folder, manifest).

    The data file is ``data/<contract name>.parquet``; the manifest names it
    (``data_file``). ``retraining_request`` (a dict of the
    :class:`~collabops.exchange.bundle.RetrainingRequest` shape) goes into the
    manifest as ``retraining_request``, so the signature covers it; it is
    checked before anything is written (:class:`RetrainingRequestError`
    naming the field). Without it the manifest has no such key, as before.
    """
    request = None if retraining_request is None else checked_retraining_request(retraining_request)
    data_file = f"{DATA_FOLDER}/{contract.name}.parquet"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".partial-") as tmp:
        root = Path(tmp) / "bundle"
        (root / DATA_FOLDER).mkdir(parents=True)
        frame.to_parquet(root / data_file, index=False)
        (root / CONTRACT_FILE).write_text(yaml.safe_dump(contract.raw, sort_keys=False), encoding="utf-8")
        (root / PROFILE_FILE).write_text(json.dumps(profile, indent=2, default=str), encoding="utf-8")
        manifest = seal(root, "data", producer, contract.digest(), signer,
                        extra={"rows": len(frame), "personal_columns": contract.personal_columns,
                               "data_file": data_file, **clock(contract),
                               **({"retraining_request": request} if request is not None else {})},
                        bundle_id=bundle_id)
        final = move_into_place(root, out_dir, f"data-{manifest['bundle_id']}")
    return final, manifest


def check_data_file(bundle: VerifiedBundle) -> None:
    """The manifest's time zone is the contract's, and the data file is Parquet with the manifest's ``rows`` and
    exactly the bundle contract's columns.

    Reads the file's footer only (no data). ``BundleError`` (check ``data``) naming the bundle otherwise.
    """
    import pyarrow.parquet as pq

    data_file = str(bundle.manifest["data_file"])
    zone, contract_zone = bundle.manifest.get("time_zone"), bundle.contract().time_zone
    if zone is not None and zone != contract_zone:
        raise BundleError(bundle.name, "data", f"the manifest says the times are in {zone}, the bundle's contract "
                                               f"says {contract_zone}")
    try:
        metadata = pq.read_metadata(bundle.root / data_file)
        columns = set(metadata.schema.to_arrow_schema().names)
    except Exception as exc:  # noqa: BLE001 - whatever pyarrow raises on a damaged file, the bundle is refused
        raise BundleError(bundle.name, "data", f"{data_file} is not a readable Parquet file: "
                                               f"{without_root(str(exc), bundle.root)}") from None
    if metadata.num_rows != bundle.manifest["rows"]:
        raise BundleError(bundle.name, "data", f"{data_file} has {metadata.num_rows} rows, the manifest says "
                                               f"{bundle.manifest['rows']}")
    expected = set(bundle.contract().column_names)
    if columns != expected:
        missing, extra = sorted(expected - columns), sorted(columns - expected)
        raise BundleError(bundle.name, "data", f"{data_file} does not have the contract's columns: " + "; ".join(
            part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"not in the contract: {', '.join(extra)}" if extra else "") if part))


def read_data(bundle: VerifiedBundle) -> pd.DataFrame:
    """The data of a verified data bundle: the Parquet file its manifest names (a file the signature covers)."""
    data_file = str(bundle.manifest.get("data_file", ""))
    if data_file not in bundle.listed:
        raise BundleError(bundle.name, "data", f"the manifest names no data file among its files ({data_file!r})")
    return pd.read_parquet(bundle.root / data_file)


def retraining_request(bundle: VerifiedBundle) -> dict[str, Any] | None:
    """The retraining request a verified data bundle's (signed) manifest carries, or None for an ordinary export.

    A copy: changing it changes nothing in the bundle. Its shape is
    :class:`~collabops.exchange.bundle.RetrainingRequest` (checked by ``verify``).
    """
    request = bundle.manifest.get("retraining_request")
    return None if request is None else copy.deepcopy(dict(request))


def describe_retraining_request(request: dict, requested_by: str | None = None) -> list[str]:
    """The lines a user is shown for a retraining request: what, why, which period, which version, the live error.

    ``request``: a dict of the :class:`~collabops.exchange.bundle.RetrainingRequest`
    shape (checked here: :class:`RetrainingRequestError` naming the field);
    ``requested_by``: the partner who signed it, named on the first line. E.g.::

        retraining request from 'industry': drift in price_per_hour, temperature_c
          why:        MAE doubled since March
          period:     2025-03-01T00:00:00+01:00 to 2025-03-31T23:00:00+02:00
          production: version 3 (model bundle 1b2c...)
          live error: mae 0.0612 on 1,234 rows (promised 0.0377, holdout 0.0401)
          monitoring: run 'monitoring-2025_04_01-...', requested at 2025-04-01T06:00:00+00:00
    """
    checked = RetrainingRequest.model_validate(checked_retraining_request(request))
    who = f" from '{requested_by}'" if requested_by else ""
    features = ", ".join(checked.drifted_features) if checked.drifted_features else "no feature named"
    preposition = "in" if checked.drifted_features else "with"
    lines = [f"retraining request{who}: {checked.verdict} {preposition} {features}",
             f"  why:        {checked.reason}",
             f"  period:     {checked.period.start} to {checked.period.end}"]
    bundle = f" (model bundle {checked.production_bundle_id})" if checked.production_bundle_id else ""
    lines.append(f"  production: version {checked.production_version}{bundle}")
    live = checked.live_error
    if live is None:
        lines.append("  live error: not measured")
    else:
        compared = ", ".join(part for part in (
            f"promised {live.promised:.4g}" if live.promised is not None else "",
            f"holdout {live.holdout:.4g}" if live.holdout is not None else "") if part)
        lines.append(f"  live error: {live.metric} {live.value:.4g} on {live.rows:,} rows"
                     + (f" ({compared})" if compared else " (no promised figure)"))
    lines.append(f"  monitoring: run '{checked.monitoring_run}', requested at {checked.requested_at}")
    return lines
