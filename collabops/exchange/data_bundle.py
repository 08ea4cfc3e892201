"""The data bundle: pseudonymised data, its contract and its profile.

Written by the industry partner's export, read by the university's training
only after ``collabops.exchange.bundle`` has verified it. A data bundle must
hold :data:`REQUIRED_FILES` and the data file its manifest names
(``data_file``); :func:`check_data_file` is the kind's payload check that
``collabops.exchange.bundle.verify`` runs: the data file is Parquet with the
manifest's row count and exactly the contract's columns.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from collabops.data.contract import DataContract
from collabops.data.profile import clock
from collabops.exchange.bundle import (
    CONTRACT_FILE,
    BundleError,
    Producer,
    VerifiedBundle,
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


def write_data_bundle(frame: pd.DataFrame, contract: DataContract, profile: dict, producer: Producer,
                      signer: Signer, out_dir: Path, bundle_id: str | None = None) -> tuple[Path, dict]:
    """Build, seal and move a data bundle to ``out_dir/data-<id>``; never overwrites one.

    The data file is ``data/<contract name>.parquet``; the manifest names it (``data_file``).
    """
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
                               "data_file": data_file, **clock(contract)}, bundle_id=bundle_id)
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
