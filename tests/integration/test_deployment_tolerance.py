"""``deploy`` starts the service with the project's ``exchange.prediction_tolerance``; its refusal is one line.

A prediction service re-predicts its bundle's reference sample at every
start and refuses beyond the tolerance. The receiver's feature code is made
to differ from the producer's as in tests/service/test_reference_predictions.py:
here the *producer's* calendar features are shifted while the bundle records
its predictions (the model itself is fitted with the real code), so the
service, running this checkout's code, predicts differently. With the
default tolerance ``deploy`` refuses in one line naming the check; with a
project tolerance that allows the difference, the same version serves.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import (
    assert_refused,
    example_data,
    key_pair,
    model_version,
    run_cli,
    run_names,
    unique,
    write_project,
)
from tests.integration.test_deployment import stop_services

pytestmark = pytest.mark.slow

PSEUDONYMISATION = {"COLLABOPS_PSEUDONYMISATION_KEY": "industry-only-secret-0123456789"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bundle_from_other_feature_code(data_bundle: Path, private_key: Path, out: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model fitted with this checkout's code, whose bundle records predictions made with shifted hours."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from collabops.data.contract import load_contract
    from collabops.data.profile import profile
    from collabops.exchange.bundle import Producer
    from collabops.exchange.model_bundle import write_model_bundle
    from collabops.exchange.signing import load_signer
    from collabops.training.features import CalendarFeatures, build_model

    contract = load_contract(data_bundle / "contract.yaml")
    manifest = json.loads((data_bundle / "manifest.json").read_text(encoding="utf-8"))
    frame = pd.read_parquet(data_bundle / manifest["data_file"])
    model = build_model(contract, HistGradientBoostingRegressor(max_iter=60, random_state=0))
    model.fit(frame[contract.feature_columns], frame[contract.target])
    original = CalendarFeatures.transform

    def shifted(self, X):
        moved = original(self, X)
        moved["hour"] = (moved["hour"] + 3) % 24
        return moved

    monkeypatch.setattr(CalendarFeatures, "transform", shifted)
    path, _ = write_model_bundle(model, contract, {"test": {"overall": {"mae": 0.03}}}, profile(frame, contract),
                                 frame.drop(columns=contract.personal_columns).head(200), "# test model\n",
                                 Producer(partner="university", stack="university-local"),
                                 load_signer("university", private_key), out,
                                 extra={"model": {"name": "parking-occupancy", "version": "1",
                                                  "training_data_bundle_id": manifest["bundle_id"]}})
    return path


def test_deploy_passes_the_projects_prediction_tolerance_to_the_service(tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    industry_key = key_pair(keys, tmp_path / "industry-home", "industry")
    university_key = key_pair(keys, tmp_path / "university-home", "university")
    name = unique("tolerance-model")
    serving = {"workers": 1, "port": _free_port(), "start_timeout": 60}
    strict = write_project(tmp_path / "strict", model_name=name, keys_dir=keys, deployment={"serving": serving})
    lenient = write_project(tmp_path / "lenient", model_name=name, keys_dir=keys, deployment={"serving": serving},
                            exchange={"prediction_tolerance": 10.0})
    assert yaml.safe_load(strict.read_text())["exchange"]["prediction_tolerance"] == 1e-9
    raw = tmp_path / "raw.parquet"
    example_data(months=3, car_parks=6, seed=17, start="2024-04-01").to_parquet(raw, index=False)
    exported = run_cli("export-data", "--project", strict, "--data", raw, "--out", tmp_path / "exchange",
                       "--private-key", industry_key, env=PSEUDONYMISATION)
    assert exported.code == 0, exported
    try:
        with monkeypatch.context() as patched:  # the producer's code, also while the bundle is imported
            bundle = _bundle_from_other_feature_code(next((tmp_path / "exchange").glob("data-*")), university_key,
                                                     tmp_path / "to-industry", patched)
            imported = run_cli("import-model", bundle, "--project", strict)
        assert imported.code == 0, imported

        runs_before = run_names("deploy")
        refused = run_cli("deploy", "--project", strict)
        assert_refused(refused, "check 'reference predictions' failed: this checkout predicts the reference sample "
                                "differently from the producer", "differ by more than 1e-09")
        assert refused.err.count("\n") == 1
        # Refused before any run: no gate judged the wrong features, nothing was recorded on the version.
        assert run_names("deploy") == runs_before and "Acceptance gate" not in refused.out
        assert "acceptance" not in model_version(name, 1).run_metadata
        assert model_version(name, 1).stage != "production"

        served = run_cli("deploy", "--version", "1", "--project", lenient)
        assert served.code == 0, served
        assert f"{name} version 1 is in production, serving at http://127.0.0.1:" in served.out
        assert model_version(name, 1).stage == "production"
    finally:
        stop_services(lenient)
