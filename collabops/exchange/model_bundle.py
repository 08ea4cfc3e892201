"""The model bundle: a model the other side can load without running arbitrary code.

The fitted scikit-learn pipeline is saved with skops and loaded only with the
explicit list of trusted types; next to it travel the contract it was
trained on, its metrics, the reference profile and sample for drift
monitoring, a model card and the exact package versions.

It also carries the proof that the receiver runs the model the producer
tested: the producer's own predictions on the reference sample, with the code
revision, the digest of the library code and the package versions that made
them (``reference/predictions.json``). The receiver re-predicts the sample at
import, at deploy and at every start of the service
(:func:`check_reference_predictions`) and refuses the model when any
prediction differs by more than the project's ``exchange.prediction_tolerance``:
a model's pipeline calls the library's feature code, so the same signed model
can predict differently on a checkout whose code differs.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from collabops.data.contract import DataContract
from collabops.errors import CollabopsError
from collabops.exchange.bundle import CONTRACT_FILE, BundleError, Producer, VerifiedBundle, move_into_place, seal
from collabops.exchange.environment import environment_text, producer_environment
from collabops.exchange.signing import Signer
from collabops.exchange.trusted_types import TRUSTED_TYPES

MODEL_FILE = "model/model.skops"
METRICS_FILE = "metrics.json"
PROFILE_FILE = "reference/profile.json"
SAMPLE_FILE = "reference/sample.parquet"
PREDICTIONS_FILE = "reference/predictions.json"
MONITORING_FILE = "reference/monitoring.parquet"
"""The rows the model was developed on, with its predictions: the reference for monitoring (optional: bundles
handed over before it existed still import, and monitoring says what is missing)."""
CARD_FILE = "MODEL_CARD.md"
ENVIRONMENT_FILE = "requirements.txt"
REQUIRED_FILES = (MODEL_FILE, CONTRACT_FILE, METRICS_FILE, PROFILE_FILE, SAMPLE_FILE, PREDICTIONS_FILE, CARD_FILE,
                  ENVIRONMENT_FILE)
"""Every file a model bundle must hold."""


def write_model_bundle(model: Any, contract: DataContract, metrics: dict[str, Any], reference_profile: dict,
                       reference_sample: pd.DataFrame, card: str, producer: Producer, signer: Signer,
                       out_dir: Path, extra: dict[str, Any],
                       monitoring_reference: pd.DataFrame | None = None) -> tuple[Path, dict]:
    """Build, seal and move a model bundle to ``out_dir/model-<id>``.

    ``monitoring_reference``: the rows the model was developed on (no
    personal columns), written with the model's ``prediction`` for each as
    :data:`MONITORING_FILE`.

    The model's predictions on ``reference_sample`` (its feature columns) go
    into the bundle with :func:`producer_environment`, for the receiver's
    :func:`check_reference_predictions`.
    """
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
        if monitoring_reference is not None:
            monitoring_reference.assign(prediction=model.predict(monitoring_reference[contract.feature_columns])
                                        ).to_parquet(root / MONITORING_FILE, index=False)
        predictions = [float(p) for p in model.predict(reference_sample[contract.feature_columns])]
        (root / PREDICTIONS_FILE).write_text(json.dumps(
            {"predictions": predictions, "producer": producer_environment(producer.code_revision)}, indent=1),
            encoding="utf-8")
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
        raise BundleError(bundle.name, "trusted types", f"{MODEL_FILE} contains types not on the trusted list: "
                                                        f"{', '.join(untrusted)}")
    return skops.io.load(path, trusted=TRUSTED_TYPES)


def read_metrics(bundle: VerifiedBundle) -> dict[str, Any]:
    return json.loads((bundle.root / METRICS_FILE).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ReplayCheck:
    """The receiver's re-prediction of the reference sample next to the producer's (target units)."""

    rows: int
    max_difference: float
    tolerance: float


def check_reference_predictions(bundle: VerifiedBundle, model: Any, tolerance: float) -> ReplayCheck:
    """Re-predict the bundle's reference sample with ``model``; ``BundleError`` if any prediction moved.

    Compares with the producer's predictions in ``reference/predictions.json``
    row by row (NaN equals only NaN). Refused when any absolute difference is
    above ``tolerance``, or the counts differ; the message names the largest
    difference and its row, the producer's code revision and library digest
    next to this checkout's, and every model package whose version differs.
    """
    import numpy as np

    from collabops.exchange.environment import library_digest, package_versions

    path = bundle.root / PREDICTIONS_FILE
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        expected = np.asarray(recorded["predictions"], dtype=float)
        producer = dict(recorded.get("producer") or {})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(bundle.name, "reference predictions", f"{PREDICTIONS_FILE} cannot be read: {exc}") from None
    sample = pd.read_parquet(bundle.root / SAMPLE_FILE)
    contract = bundle.contract()
    got = np.asarray(model.predict(sample[contract.feature_columns]), dtype=float)
    if got.shape != expected.shape:
        raise BundleError(bundle.name, "reference predictions",
                          f"{len(expected)} recorded predictions for a sample of {len(got)} rows")
    differences = np.abs(got - expected)
    differences[np.isnan(got) & np.isnan(expected)] = 0.0
    differences[np.isnan(got) != np.isnan(expected)] = np.inf
    worst = int(np.argmax(differences)) if len(differences) else 0
    largest = float(differences[worst]) if len(differences) else 0.0
    if largest > tolerance:
        moved = int((differences > tolerance).sum())
        ours = package_versions(tuple(producer.get("packages") or ()))
        changed = [f"{name} {version} -> {ours[name]}" for name, version in sorted((producer.get("packages")
                                                                                    or {}).items())
                   if ours.get(name) != version]
        raise BundleError(bundle.name, "reference predictions", (
            f"this checkout predicts the reference sample differently from the producer: {moved} of {len(got)} "
            f"rows differ by more than {tolerance:g}, the largest by {largest:.6g} (row {worst + 1}: producer "
            f"{expected[worst]:.6g}, here {got[worst]:.6g}); producer code revision "
            f"{producer.get('code_revision') or 'unknown'} (library {str(producer.get('library_digest'))[:12]}), "
            f"here library {library_digest()[:12]}; "
            + (f"package versions differ: {', '.join(changed)}" if changed else "package versions are the same")
            + ". Run the producer's code revision here, or ask the producer for a bundle made with this code"))
    return ReplayCheck(len(got), largest, tolerance)


class HandoverError(CollabopsError):
    """A model version that cannot be handed over as it was tested."""


def check_training_code_reproduced(model: Any, contract: DataContract, task: Any, test: pd.DataFrame,
                                   recorded: dict[str, Any], version: str, code_revision: str | None) -> None:
    """Refuse to hand over a model that this checkout's code scores differently from the code that trained it.

    The bundle's reference predictions are made at handover, by the
    checkout's code: they must be the training code's. The version's test
    metrics, recorded when it was trained (``recorded``, as
    ``training.evaluation.scores`` gives them), are recomputed on its test
    period with ``task``'s primary metric; any difference beyond 1e-9
    relative (the same code gives the same figures) means the library's code
    changed since, and ``HandoverError`` names both figures.
    """
    import math

    from collabops.training.evaluation import evaluate

    metric = task.primary_metric
    now = evaluate(task, contract, model, test)["overall"][metric]
    then = recorded["overall"][metric]
    if not (math.isclose(now, then, rel_tol=1e-9, abs_tol=0.0) or (now != now and then != then)):
        raise HandoverError(
            f"model version {version} scores test {metric} {now:.6g} with this checkout's code (revision "
            f"{code_revision or 'unknown'}) but {then:.6g} when it was trained: the library's code changed since, "
            "so the bundle's reference predictions would not be the tested model's. Hand it over from the code "
            "revision it was trained with (its metadata 'code_revision'), or train again with this code")
