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

from collabops.exchange.bundle import CONTRACT_FILE, Producer, VerifiedBundle, move_into_place, seal
from collabops.data.contract import DataContract
from collabops.exchange.signing import Signer

DATA_FILE = "data/occupancy.parquet"
PROFILE_FILE = "profile.json"


def write_data_bundle(frame: pd.DataFrame, contract: DataContract, profile: dict, producer: Producer,
                      signer: Signer, out_dir: Path) -> tuple[Path, dict]:
    """Build, seal and move a data bundle to ``out_dir/data-<id>``; never overwrites one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".partial-") as tmp:
        root = Path(tmp) / "bundle"
        (root / "data").mkdir(parents=True)
        frame.to_parquet(root / DATA_FILE, index=False)
        (root / CONTRACT_FILE).write_text(yaml.safe_dump(contract.raw, sort_keys=False), encoding="utf-8")
        (root / PROFILE_FILE).write_text(json.dumps(profile, indent=2, default=str), encoding="utf-8")
        manifest = seal(root, "data", producer, contract.digest(), signer,
                        extra={"rows": int(len(frame)), "personal_columns": contract.personal_columns})
        final = move_into_place(root, out_dir, f"data-{manifest['bundle_id']}")
    return final, manifest


def read_data(bundle: VerifiedBundle) -> pd.DataFrame:
    """The data of a verified data bundle."""
    return pd.read_parquet(bundle.root / DATA_FILE)
