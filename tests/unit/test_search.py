"""The hyperparameter search: scored on the validation period, best refitted on train + validation.

A ``DummyRegressor`` stands in for the estimator so every score is known in
advance: with ``strategy="quantile"`` it predicts one quantile of the target
it was fitted on, so the validation error of each candidate and the refitted
model's prediction can be computed here with NumPy alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyRegressor

from collabops.data.contract import load_contract
from collabops.data.generator import GeneratorSettings, generate
from collabops.data.split import SplitSettings, time_split
from collabops.errors import ConfigError
from collabops.training.search import SearchSettings, search
from collabops.training.tasks import RegressionTask, Task

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = load_contract(ROOT / "configs" / "contract.yaml")


class DummyTask(RegressionTask):
    """The regression task with a ``DummyRegressor`` as its estimator."""

    def make_estimator(self, params: dict[str, Any]) -> BaseEstimator:
        try:
            return DummyRegressor(**params)
        except TypeError as exc:
            raise ConfigError(f"search: invalid estimator parameter: {exc}") from None


@pytest.fixture(scope="module")
def parts() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training targets spread over 0-1; validation targets all high, so the validation favours a high quantile."""
    frame = CONTRACT.validate(generate(GeneratorSettings(months=1, car_parks=3, seed=1)), "gen")
    split = time_split(frame, CONTRACT.time_column, SplitSettings(), "gen")
    rng = np.random.default_rng(0)
    train = split.train.assign(**{CONTRACT.target: rng.uniform(0.0, 1.0, len(split.train))})
    validation = split.validation.assign(**{CONTRACT.target: rng.uniform(0.75, 1.0, len(split.validation))})
    return train, validation


def _quantile(y: np.ndarray, q: float) -> float:
    return float(np.percentile(y, 100 * q))  # what DummyRegressor(strategy="quantile") fits


def test_picks_the_best_validation_score_and_refits_on_train_and_validation(parts):
    train, validation = parts
    target = CONTRACT.target
    settings = SearchSettings.from_dict({"base": {"strategy": "quantile"}, "grid": {"quantile": [0.1, 0.5, 0.9]}})
    result = search(DummyTask(), CONTRACT, train, validation, settings)

    y_train, y_val = train[target].to_numpy(), validation[target].to_numpy()
    expected = [float(np.mean(np.abs(y_val - _quantile(y_train, q)))) for q in (0.1, 0.5, 0.9)]
    assert list(result.trials["candidate"]) == [1, 2, 3]
    assert list(result.trials["quantile"]) == [0.1, 0.5, 0.9]
    # The validation MAE, as a positive error, of a model fitted on the training period only.
    np.testing.assert_allclose(result.trials["validation_mae"], expected, rtol=1e-12)
    assert (result.trials["seconds"] >= 0).all()
    # 0.9 wins on validation; 0.5 would win on the training period itself.
    assert result.best_params == {"strategy": "quantile", "quantile": 0.9}

    both = np.concatenate([y_train, y_val])
    refitted = result.model.predict(validation[CONTRACT.feature_columns].head(3))
    assert _quantile(both, 0.9) != pytest.approx(_quantile(y_train, 0.9))  # so the next line can tell them apart
    np.testing.assert_allclose(refitted, [_quantile(both, 0.9)] * 3)
    assert result.model.named_steps["estimator"].quantile == 0.9
    assert list(result.model.feature_names_in_) == CONTRACT.feature_columns


def test_a_metric_where_higher_is_better_picks_the_highest(parts):
    train, validation = parts
    y_val = validation[CONTRACT.target].to_numpy()
    constants = [0.2, float(np.mean(y_val)), 0.5]
    settings = SearchSettings.from_dict({"base": {"strategy": "constant"}, "grid": {"constant": constants}})
    task = DummyTask(primary_metric="r2")
    result = search(task, CONTRACT, train, validation, settings)

    def r2(c: float) -> float:
        return 1 - float(np.sum((y_val - c) ** 2) / np.sum((y_val - y_val.mean()) ** 2))

    # R² keeps its own sign (scorer "r2" is already greater-is-better) and the highest wins.
    np.testing.assert_allclose(result.trials["validation_r2"], [r2(c) for c in constants], rtol=1e-9)
    assert result.best_params["constant"] == constants[1]
    assert result.trials["validation_r2"].iloc[[0, 2]].max() < -1  # far worse than predicting the mean (R² 0)


def test_without_a_grid_the_base_parameters_are_the_one_candidate(parts):
    train, validation = parts
    settings = SearchSettings.from_dict({"base": {"strategy": "median"}})
    result = search(DummyTask(), CONTRACT, train, validation, settings)
    assert len(result.trials) == 1 and list(result.trials.columns) == ["candidate", "validation_mae", "seconds"]
    assert result.best_params == {"strategy": "median"}
    both = pd.concat([train, validation])[CONTRACT.target]
    assert result.model.predict(train[CONTRACT.feature_columns].head(1))[0] == pytest.approx(both.median())


def test_an_unknown_parameter_is_a_config_error(parts):
    train, validation = parts
    settings = SearchSettings.from_dict({"grid": {"max_depth": [3]}})
    with pytest.raises(ConfigError, match=r"search: invalid estimator parameter: .*max_depth"):
        search(DummyTask(), CONTRACT, train, validation, settings)


def test_the_task_is_a_protocol_the_search_only_reads():
    assert isinstance(DummyTask(), Task)
    assert DummyTask().scoring == "neg_mean_absolute_error"
    assert DummyTask(primary_metric="r2").scoring == "r2"


@pytest.mark.parametrize("raw, message", [
    ({"grid": {"quantile": []}}, "search.grid.quantile must be a non-empty list"),
    ({"folds": 3}, "unknown setting"),
])
def test_bad_search_settings(raw, message):
    with pytest.raises(ConfigError, match=message):
        SearchSettings.from_dict(raw)
