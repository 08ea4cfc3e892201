"""The training pipeline itself refuses bad data, without the CLI's pre-check, and creates no model version."""

from __future__ import annotations

import pytest

from tests.conftest import CONTRACT, example_data, model_exists, run_cli, run_names, unique

pytestmark = pytest.mark.slow


def test_the_pipeline_refuses_bad_data_without_a_model_version(tmp_path):
    from collabops.errors import CollabopsError
    from orchestration import names
    from orchestration.runs import run_pipeline

    frame = example_data(months=1, car_parks=4, seed=9)
    frame.loc[5, "occupancy_rate"] = -0.3
    path = tmp_path / "range.csv"
    frame.to_csv(path, index=False)
    assert run_cli("stacks").code == 0
    model_name = unique("direct-pipeline-model")
    before = run_names(names.TRAINING)
    config = {"parameters": {"contract_path": str(CONTRACT), "task": "regression", "model_name": model_name,
                             "split": {}, "search": {}, "data_path": str(path), "experiment_tracker": None}}
    with pytest.raises(CollabopsError) as refused:
        run_pipeline(names.TRAINING, config, partner=None)
    message = str(refused.value)
    assert "range.csv" in message and "column 'occupancy_rate'" in message and "(row 6)" in message
    failed = run_names(names.TRAINING) - before
    assert failed == {refused.value.run_name}  # the run did start (and fail) under its own name ...
    assert not model_exists(model_name)  # ... yet no model version, not even the model, exists
