"""The training pipeline on a throw-away ZenML store: versions, stages, metadata, MLflow."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Workspace, model_versions


@pytest.fixture(scope="module")
def trained(workspace: Workspace):
    """One model trained twice with the same config (a tie), then once with a crippled model."""
    name = f"pipeline-test-{uuid.uuid4().hex[:8]}"
    config = workspace.training_config(model_name=name)
    first = workspace.run("train", "--config", str(config), "--partner", "university")
    assert first.returncode == 0, first.stderr[-3000:]
    second = workspace.run("train", "--config", str(config), "--partner", "university")
    assert second.returncode == 0, second.stderr[-3000:]
    crippled = workspace.training_config(model_name=name, max_iter=1, learning_rate=0.01)
    third = workspace.run("train", "--config", str(crippled), "--partner", "university")
    assert third.returncode == 0, third.stderr[-3000:]
    return name, first, second, third


def _version(name: str, number: int):
    from zenml.client import Client

    return Client().get_model_version(name, number)


def test_first_version_is_promoted_to_staging_with_its_evidence(trained):
    name, first, _, _ = trained
    version = _version(name, 1)
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
    assert "version 1 (stage: staging)" in first.stdout
    assert f"MAE {test_mae:.4f}" in first.stdout


def test_mlflow_run_holds_the_metrics_and_the_model(trained):
    import mlflow
    from zenml.client import Client

    name, _, _, _ = trained
    metadata = _version(name, 1).run_metadata
    stack = Client().get_stack("university-local")
    from zenml.stack import Stack

    tracker = Stack.from_model(stack).experiment_tracker
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracker.get_tracking_uri())
    try:
        _check_mlflow_run(mlflow, mlflow.MlflowClient(), metadata)
    finally:
        mlflow.set_tracking_uri(previous)


def _check_mlflow_run(mlflow, client, metadata):
    run = client.get_run(metadata["mlflow_run_id"])
    assert run.data.metrics["test_mae"] == pytest.approx(metadata["test_metrics"]["overall"]["mae"])
    assert run.data.metrics["baseline_test_mae"] == pytest.approx(metadata["baseline_test_metrics"]["overall"]["mae"])
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
    assert list(loaded.feature_names_in_)[0] == "timestamp"


def test_a_tie_does_not_replace_staging(trained):
    name, _, second, _ = trained
    version = _version(name, 2)
    assert version.stage is None or version.stage == "none"
    promotion = version.run_metadata["promotion"]
    assert promotion["promote"] is False
    assert "does not beat staging version 1" in promotion["reason"]
    assert promotion["champion"] == pytest.approx(_version(name, 1).run_metadata["test_metrics"]["overall"]["mae"])
    assert "not promoted" in second.stdout


def test_a_model_worse_than_the_baseline_is_not_promoted(trained):
    name, _, _, third = trained
    promotion = _version(name, 3).run_metadata["promotion"]
    assert promotion["promote"] is False
    assert "does not beat the baseline" in promotion["reason"]
    stages = {v.name: v.stage for v in model_versions(name)}
    assert stages["1"] == "staging" and [s for s in stages.values() if s == "staging"] == ["staging"]


def test_plots_are_artifacts_the_dashboard_can_show(trained):
    from zenml.client import Client

    name, _, _, _ = trained
    version = _version(name, 1)
    run = Client().get_pipeline_run(version.run_metadata and list(version.pipeline_run_ids.values())[0])
    outputs = run.steps["evaluate_models"].outputs
    for plot in ("forecast_week_plot", "error_by_hour_plot", "feature_importance_plot"):
        artifact = outputs[plot][0]
        assert artifact.visualizations, plot
        assert artifact.load().size[0] > 300
    assert run.steps["train_model"].outputs["trained_model"][0].load().predict is not None
