"""The model bundle: a model the other side can load without running arbitrary code.

The fitted scikit-learn pipeline is saved with skops and loaded only with the
explicit list of trusted types; next to it travel the contract it was
trained on, its metrics, the reference profile and sample for drift
monitoring, a model card and the exact package versions.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from collabops.data.contract import DataContract
from collabops.exchange.bundle import CONTRACT_FILE, BundleError, Producer, VerifiedBundle, move_into_place, seal
from collabops.exchange.environment import environment_text
from collabops.exchange.signing import Signer
from collabops.exchange.trusted_types import TRUSTED_TYPES

MODEL_FILE = "model/model.skops"
METRICS_FILE = "metrics.json"
PROFILE_FILE = "reference/profile.json"
SAMPLE_FILE = "reference/sample.parquet"
CARD_FILE = "MODEL_CARD.md"
ENVIRONMENT_FILE = "requirements.txt"


def write_model_bundle(model: Any, contract: DataContract, metrics: dict[str, Any], reference_profile: dict,
                       reference_sample: pd.DataFrame, card: str, producer: Producer, signer: Signer,
                       out_dir: Path, extra: dict[str, Any]) -> tuple[Path, dict]:
    """Build, seal and move a model bundle to ``out_dir/model-<id>``."""
    import skops.io

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".partial-") as tmp:
        root = Path(tmp) / "bundle"
        for folder in ("model", "reference"):
            (root / folder).mkdir(parents=True)
        skops.io.dump(model, root / MODEL_FILE)
        (root / CONTRACT_FILE).write_text(yaml.safe_dump(contract.raw, sort_keys=False), encoding="utf-8")
        (root / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        (root / PROFILE_FILE).write_text(json.dumps(reference_profile, indent=2, default=str), encoding="utf-8")
        reference_sample.to_parquet(root / SAMPLE_FILE, index=False)
        (root / CARD_FILE).write_text(card, encoding="utf-8")
        (root / ENVIRONMENT_FILE).write_text(environment_text(), encoding="utf-8")
        manifest = seal(root, "model", producer, contract.digest(), signer, extra=extra)
        final = move_into_place(root, out_dir, f"model-{manifest['bundle_id']}")
    return final, manifest


def load_model(bundle: VerifiedBundle) -> Any:
    """The model of a verified bundle, refusing any type outside the trusted list."""
    import skops.io

    path = bundle.root / MODEL_FILE
    untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    if untrusted:
        raise BundleError(bundle.root, "trusted types", f"{MODEL_FILE} contains types not on the trusted list: "
                                                        f"{', '.join(untrusted)}")
    return skops.io.load(path, trusted=TRUSTED_TYPES)


def read_metrics(bundle: VerifiedBundle) -> dict[str, Any]:
    return json.loads((bundle.root / METRICS_FILE).read_text(encoding="utf-8"))
