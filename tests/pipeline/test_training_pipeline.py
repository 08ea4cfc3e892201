"""The training pipeline on the session's ZenML store: versions, stages, metadata, MLflow, run names.

Commands run in this process (``run_cli``); each test module trains its
own model name, so nothing here depends on what other tests trained.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    CONTRACT,
    FAST_CONFIG,
    PROJECT,
    model_version,
    run_cli,
    training_config,
    unique,
    version_numbers,
    write_project,
)

pytestmark = pytest.mark.slow

RUN_NAME = r"Training run '(training-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d-[0-9a-f]{8})' finished: completed"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One model trained twice with the same config (a tie), then once with a crippled model."""
    base = tmp_path_factory.mktemp("pipeline")
    name = unique("pipeline-test")
    project = write_project(base, model_name=name)
    first = run_cli("train", "--project", project, "--partner", "university")
    assert first.code == 0, first
    second = run_cli("train", "--project", project, "--partner", "university")
    assert second.code == 0, second
    crippled = training_config(base, "crippled.yaml", max_iter=1, learning_rate=0.01)
    third = run_cli("train", "--project", project, "--partner", "university", "--config", crippled)
    assert third.code == 0, third
    return name, first, second, third


def test_each_run_has_its_own_explicit_name(trained):
    _, *results = trained
    names = [re.search(RUN_NAME, r.out).group(1) for r in results]
    assert len(set(names)) == 3


def test_first_version_is_promoted_to_staging_with_its_evidence(trained):
    name, first, _, _ = trained
    version = model_version(name, 1)
    assert version.stage == "staging"
    metadata = version.run_metadata
    assert metadata["promotion"]["promote"] is True
    assert "no staging version yet" in metadata["promotion"]["reason"]
    test_mae = metadata["test_metrics"]["overall"]["mae"]
    assert test_mae < metadata["baseline_test_metrics"]["overall"]["mae"]
    assert set(metadata["test_metrics"]["by_segment"]) <= {
        "city_centre", "residential", "airport", "event_arena", "hospital", "shopping_mall",
        "train_station", "university_campus"}
    assert set(metadata["test_metrics"]["by_hour_band"]) == {"night", "morning", "midday", "evening", "late"}
    assert metadata["contract"] == "parking-occupancy" and len(metadata["contract_digest"]) == 64
    assert metadata["task"] == "regression"
    assert f"model version: {name} version 1 (stage: staging)" in first.out
    assert f"MAE {test_mae:.4f}" in first.out
    assert f"training {name} as partner 'university' on stack 'university-local'" in first.out


def test_mlflow_run_holds_the_metrics_and_the_model(trained):
    import mlflow
    from zenml.client import Client
    from zenml.stack import Stack

    name, _, _, _ = trained
    metadata = model_version(name, 1).run_metadata
    tracker = Stack.from_model(Client().get_stack("university-local")).experiment_tracker
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracker.get_tracking_uri())
    try:
        client = mlflow.MlflowClient()
        run = client.get_run(metadata["mlflow_run_id"])
        assert client.get_experiment(run.info.experiment_id).name == name  # one experiment per model
        assert run.data.metrics["test_mae"] == pytest.approx(metadata["test_metrics"]["overall"]["mae"])
        assert run.data.metrics["baseline_test_mae"] == pytest.approx(
            metadata["baseline_test_metrics"]["overall"]["mae"])
        assert "test_mae.by_segment.residential" in run.data.metrics
        assert run.data.params["max_leaf_nodes"] == str(metadata["best_params"]["max_leaf_nodes"])
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert artifacts == {"plots/forecast_week.png", "plots/error_by_hour.png", "plots/feature_importance.png"}
        logged = client.search_logged_models(experiment_ids=[run.info.experiment_id])
        model = next(m for m in logged if m.source_run_id == run.info.run_id)
        signature = mlflow.models.get_model_info(model.model_uri).signature
        assert signature.inputs.input_names()[:3] == ["timestamp", "car_park_id", "car_park_kind"]
        assert "last_entry_plate" not in signature.inputs.input_names()
        loaded = mlflow.sklearn.load_model(model.model_uri)
        assert loaded.feature_names_in_[0] == "timestamp"
    finally:
        mlflow.set_tracking_uri(previous)


def test_a_tie_does_not_replace_staging(trained):
    name, _, second, _ = trained
    version = model_version(name, 2)
    assert version.stage in (None, "none")
    promotion = version.run_metadata["promotion"]
    assert promotion["promote"] is False
    assert "does not beat staging version 1" in promotion["reason"]
    assert promotion["champion"] == pytest.approx(model_version(name, 1).run_metadata["test_metrics"]["overall"]["mae"])
    assert "not promoted" in second.out


def test_a_model_worse_than_the_baseline_is_not_promoted(trained):
    name, _, _, third = trained
    promotion = model_version(name, 3).run_metadata["promotion"]
    assert promotion["promote"] is False
    assert "does not beat the baseline" in promotion["reason"]
    assert version_numbers(name) == [1, 2, 3]
    assert [n for n in (1, 2, 3) if model_version(name, n).stage == "staging"] == [1]
    assert "version 3 (stage: none)" in third.out


def test_plots_are_artifacts_the_dashboard_can_show(trained):
    from zenml.client import Client

    name, _, _, _ = trained
    run_id = next(iter(model_version(name, 1).pipeline_run_ids.values()))
    run = Client().get_pipeline_run(run_id)
    outputs = run.steps["evaluate_models"].outputs
    for plot in ("forecast_week_plot", "error_by_hour_plot", "feature_importance_plot"):
        artifact = outputs[plot][0]
        assert artifact.visualizations, plot
        assert artifact.load().size[0] > 300
    assert hasattr(run.steps["train_model"].outputs["trained_model"][0].load(), "predict")


def test_train_on_a_generated_drift_file(drift_model):
    """``generate-data --drift`` writes a file ``train --data`` accepts, and the model is trained on that file."""
    data = drift_model.data.resolve()
    assert f"with data from {data}" in drift_model.trained.out
    assert f"{drift_model.model_name} version 1 (stage: staging)" in drift_model.trained.out
    from zenml.client import Client

    version = model_version(drift_model.model_name, 1)
    assert version.run_metadata["data_source"] == str(data)
    run = Client().get_pipeline_run(next(iter(version.pipeline_run_ids.values())))
    periods = run.steps["split_data"].run_metadata["periods"]
    assert periods["train"]["start"].startswith("2025-01-01")  # the drift file's period, not the generator's 2024


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A checkout's configs/ folder with the parking project and a copy of it for another model and contract."""
    configs = tmp_path / "checkout" / "configs"
    configs.mkdir(parents=True)
    shutil.copy(PROJECT, configs / "parking.yaml")
    shutil.copy(CONTRACT, configs / "contract.yaml")
    shutil.copy(FAST_CONFIG, configs / "training.yaml")  # the project's own training config, made small
    other = yaml.safe_load(PROJECT.read_text())
    other.update(name="other", model_name=unique("other-model"), contract="other-contract.yaml")
    (configs / "other.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    contract = yaml.safe_load(CONTRACT.read_text())
    contract["name"] = "other-occupancy"
    (configs / "other-contract.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    return configs


def test_two_projects_side_by_side_train_their_own_models(checkout):
    """Two project files in one checkout: each ``train --project`` makes a version of its own model and contract."""
    parking_name = yaml.safe_load((checkout / "parking.yaml").read_text())["model_name"]
    other_name = yaml.safe_load((checkout / "other.yaml").read_text())["model_name"]
    before = version_numbers(parking_name)
    parking = run_cli("train", "--project", checkout / "parking.yaml", "--partner", "university")
    assert parking.code == 0, parking
    other = run_cli("train", "--project", checkout / "other.yaml", "--partner", "university")
    assert other.code == 0, other

    new_parking = sorted(set(version_numbers(parking_name)) - set(before))
    assert len(new_parking) == 1
    assert f"model version: {parking_name} version {new_parking[0]}" in parking.out
    assert version_numbers(other_name) == [1]
    assert f"model version: {other_name} version 1" in other.out
    parking_meta = model_version(parking_name, new_parking[0]).run_metadata
    other_meta = model_version(other_name, 1).run_metadata
    assert parking_meta["contract"] == "parking-occupancy" and other_meta["contract"] == "other-occupancy"
    assert parking_meta["contract_digest"] != other_meta["contract_digest"]
    assert f"training {other_name} as partner" in other.out
