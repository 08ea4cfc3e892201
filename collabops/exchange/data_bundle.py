"""The data bundle: pseudonymised data, its contract and its profile.

Written by the industry partner's export, read by the university's training
only after ``collabops.exchange.bundle`` has verified it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from collabops.data.contract import DataContract
from collabops.exchange.bundle import CONTRACT_FILE, BundleError, Producer, VerifiedBundle, move_into_place, seal
from collabops.exchange.signing import Signer

DATA_FOLDER = "data"
PROFILE_FILE = "profile.json"


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
                               "data_file": data_file}, bundle_id=bundle_id)
        final = move_into_place(root, out_dir, f"data-{manifest['bundle_id']}")
    return final, manifest


def read_data(bundle: VerifiedBundle) -> pd.DataFrame:
    """The data of a verified data bundle: the Parquet file its manifest names (a file the signature covers)."""
    data_file = str(bundle.manifest.get("data_file", ""))
    listed = {entry["path"] for entry in bundle.manifest.get("files", [])}
    if data_file not in listed:
        raise BundleError(bundle.root, "data", f"the manifest names no data file among its files ({data_file!r})")
    return pd.read_parquet(bundle.root / data_file)
