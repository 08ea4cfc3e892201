"""The deploy gate against the seasonal baseline, fitted on every row the export put in the model's data bundle.

The issue's case: on the industry's own holdout the deployed model was worse
than the seasonal baseline and passed. Here the industry exports (keeping its
holdout), the university's model is fitted on part of the data bundle, its
version names that training period, and ``deploy`` must refuse it because it
does not beat the baseline by ``deployment.acceptance.min_gain_over_baseline``,
with the baseline fitted on all the exported rows: a period the producer
declares (which the receiver cannot check) never narrows it. The
expected baseline score is computed here from the raw data with the library's
contract, holdout split and baseline, independently of the deploy code.
Nothing here starts a prediction service (the gate refuses first).

The gate reads the period from what the import records of the bundle's
manifest (``producer_model.training_period``, next to
``training_data_bundle_id``). Today's manifest schema has no such field (the
bundle's owners add it), so these tests record it on the imported version
as the import would (:func:`_name_training_period`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from collabops.data.contract import load_contract
from collabops.data.split import hold_out_latest
from collabops.training.baseline import SeasonalProfileBaseline
from tests.conftest import (
    CONTRACT,
    assert_refused,
    example_data,
    key_pair,
    model_version,
    run_cli,
    run_names,
    write_project,
)

pytestmark = pytest.mark.slow

PSEUDONYMISATION = {"COLLABOPS_PSEUDONYMISATION_KEY": "industry-only-secret-0123456789"}


@dataclass(frozen=True)
class Exported:
    base: Path
    keys: Path
    university_key: Path
    bundle: Path
    bundle_id: str
    rows: pd.DataFrame
    """What the export put in the data bundle, before pseudonymisation (validated as the export validates)."""
    holdout: pd.DataFrame


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Exported:
    base = tmp_path_factory.mktemp("gate-training-rows")
    keys = base / "keys"
    industry_key = key_pair(keys, base / "industry-home", "industry")
    university_key = key_pair(keys, base / "university-home", "university")
    frame = example_data(months=2, car_parks=6, seed=13, start="2024-04-01")
    raw = base / "raw.parquet"
    frame.to_parquet(raw, index=False)
    exporter = write_project(base / "exporter", keys_dir=keys)
    done = run_cli("export-data", "--project", exporter, "--data", raw, "--out", base / "exchange", "--private-key",
                   industry_key, env=PSEUDONYMISATION)
    assert done.code == 0, done
    bundle = next((base / "exchange").glob("data-*"))
    contract = load_contract(CONTRACT)
    rows, holdout = hold_out_latest(contract.validate(frame, source=str(raw)), contract.time_column, 0.1)
    bundle_id = json.loads((bundle / "manifest.json").read_text())["bundle_id"]
    return Exported(base, keys, university_key, bundle, bundle_id, rows, holdout)


def _bundle_trained_on_a_period(exported: Exported, period: dict[str, str], max_iter: int, out: Path) -> Path:
    """What the university's handover sends for a model fitted on the data bundle's rows of ``period``."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from collabops.data.profile import profile
    from collabops.exchange.bundle import Producer
    from collabops.exchange.model_bundle import write_model_bundle
    from collabops.exchange.signing import load_signer
    from collabops.training.features import build_model

    contract = load_contract(exported.bundle / "contract.yaml")
    manifest = json.loads((exported.bundle / "manifest.json").read_text(encoding="utf-8"))
    frame = pd.read_parquet(exported.bundle / manifest["data_file"])
    time = frame[contract.time_column]
    trained = frame[(time >= pd.Timestamp(period["start"])) & (time <= pd.Timestamp(period["end"]))]
    model = build_model(contract, HistGradientBoostingRegressor(max_iter=max_iter, random_state=0))
    model.fit(trained[contract.feature_columns], trained[contract.target])
    reference = trained.drop(columns=contract.personal_columns)
    metrics = {"test": {"overall": {"mae": 0.03}, "by_segment": {}}}
    path, _ = write_model_bundle(model, contract, metrics, profile(trained, contract), reference.head(300),
                                 "# test model\n", Producer(partner="university", stack="university-local"),
                                 load_signer("university", exported.university_key), out,
                                 extra={"model": {"name": "parking-occupancy", "version": "1",
                                                  "training_data_bundle_id": manifest["bundle_id"]}})
    return path


def _name_training_period(model_name: str, version: str, period: dict[str, str]) -> None:
    """Record on an imported version the training period its bundle's manifest would name (``model.training_period``),
    where the import records the manifest's ``model`` section."""
    from zenml import log_metadata

    found = model_version(model_name, version)
    producer_model = dict(found.run_metadata["producer_model"])
    log_metadata(metadata={"producer_model": {**producer_model, "training_period": period}},
                 model_version_id=found.id)


def _baseline_mae(rows: pd.DataFrame, holdout: pd.DataFrame) -> float:
    """The seasonal baseline fitted on ``rows``, its MAE on ``holdout``: computed here, not by the deploy code."""
    contract = load_contract(CONTRACT)
    fitted = SeasonalProfileBaseline(contract.time_column, contract.entity_column).fit(
        rows[contract.feature_columns], rows[contract.target])
    return float(np.mean(np.abs(fitted.predict(holdout[contract.feature_columns]) - holdout[contract.target])))


def test_a_model_worse_than_the_baseline_is_refused_with_the_baseline_fitted_on_every_exported_row(exported,
                                                                                                     tmp_path):
    time = exported.rows["timestamp"]
    start, end = time.min(), time.min() + pd.Timedelta(days=20)
    period = {"start": str(start), "end": str(end)}
    in_period = exported.rows[(time >= start) & (time <= end)]
    assert 0 < len(in_period) < len(exported.rows)
    bundle = _bundle_trained_on_a_period(exported, period, max_iter=3, out=tmp_path / "to-industry")
    # Under the ceiling and with no production model: only the baseline can refuse it.
    project = write_project(tmp_path / "industry", keys_dir=exported.keys,
                            deployment={"acceptance": {"max_error": 1.0}})
    imported = run_cli("import-model", bundle, "--project", project)
    assert imported.code == 0, imported
    name = yaml.safe_load(project.read_text())["model_name"]
    _name_training_period(name, "1", period)
    runs_before = run_names("deploy")

    refused = run_cli("deploy", "--project", project)

    acceptance = model_version(name, 1).run_metadata["acceptance"]
    candidate, baseline = acceptance["candidate"]["overall"]["mae"], acceptance["baseline"]["overall"]["mae"]
    assert baseline == pytest.approx(_baseline_mae(exported.rows, exported.holdout), rel=1e-9)
    assert baseline != pytest.approx(_baseline_mae(in_period, exported.holdout), rel=1e-6)  # not the declared period
    assert candidate > baseline
    assert acceptance["baseline_fit"]["rows"] == len(exported.rows) and acceptance["baseline_fit"]["period"] is None
    failure = (f"mae {candidate:.4f} does not beat the seasonal baseline's {baseline:.4f} on our holdout by 5% "
               f"(needs at most {baseline * 0.95:.4f})")
    assert acceptance["failures"] == [failure]
    assert_refused(refused, f"acceptance gate refused model version 1: {failure}. Production is unchanged.")
    assert refused.err.count("\n") == 1
    assert (f"seasonal baseline: fitted on all the rows export-data put in data bundle {exported.bundle_id}, the one "
            f"the model was trained on (the bundle declares the training period {period['start']} to "
            f"{period['end']}; the baseline does not depend on what the producer declares)") in refused.out
    assert f"| overall | {candidate:.4f} | {baseline:.4f} | - | 0.0300 |" in refused.out
    assert (f"gate refused: mae on our holdout: candidate {candidate:.4f}, seasonal baseline {baseline:.4f}, "
            "production none") in refused.out
    assert len(run_names("deploy") - runs_before) == 1
    assert model_version(name, 1).stage != "production"


def test_a_declared_period_cannot_weaken_the_baseline(exported, tmp_path):
    """The newcomer's attack: a bundle re-signed to declare one day (or no exported day) as its training period.

    A baseline fitted on that day alone is easy to beat; the gate fits it on
    every exported row instead, so the verdict is the one the real data gives.
    """
    start = exported.rows["timestamp"].min()
    fitted_on = {"start": str(start), "end": str(start + pd.Timedelta(days=20))}
    bundle = _bundle_trained_on_a_period(exported, fitted_on, max_iter=3, out=tmp_path / "to-industry")
    project = write_project(tmp_path / "industry", keys_dir=exported.keys,
                            deployment={"acceptance": {"max_error": 1.0}})
    assert run_cli("import-model", bundle, "--project", project).code == 0
    name = yaml.safe_load(project.read_text())["model_name"]
    _name_training_period(name, "1", {"start": str(start - pd.Timedelta(days=60)),
                                      "end": str(start - pd.Timedelta(days=59))})
    refused = run_cli("deploy", "--project", project)
    baseline = model_version(name, 1).run_metadata["acceptance"]["baseline"]["overall"]["mae"]
    assert baseline == pytest.approx(_baseline_mae(exported.rows, exported.holdout), rel=1e-9)
    assert_refused(refused, "does not beat the seasonal baseline's")
