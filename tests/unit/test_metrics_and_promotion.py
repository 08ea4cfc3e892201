"""Metrics, the task protocol and the champion/challenger rule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.metrics import get_scorer

from collabops.data.contract import load_contract
from collabops.errors import ConfigError
from collabops.training import metrics
from collabops.training.promotion import ChampionComparison, decide
from collabops.training.tasks import TASKS, RegressionTask, Task, get_task


def test_regression_metrics_against_hand_computed_values():
    y, pred = np.array([0.0, 0.5, 1.0]), np.array([0.1, 0.5, 0.7])
    scores = metrics.regression_metrics(y, pred)
    assert scores["mae"] == pytest.approx((0.1 + 0 + 0.3) / 3)
    assert scores["rmse"] == pytest.approx(np.sqrt((0.01 + 0.09) / 3))
    assert scores["r2"] == pytest.approx(1 - 0.10 / 0.5)
    assert all(type(v) is float for v in scores.values())


def test_r2_of_a_constant_target_is_nan_not_scikit_learns_finite_stand_in():
    assert math.isnan(metrics.r2([0.3, 0.3, 0.3], [0.3, 0.2, 0.4]))
    assert math.isnan(metrics.r2([0.3, 0.3], [0.3, 0.3]))
    assert math.isnan(metrics.r2([0.3], [0.1]))


def test_hour_bands_cover_the_day_and_mae_by_group():
    bands = metrics.hour_band(np.arange(24))
    assert None not in set(bands) and bands[0] == "night" and bands[8] == "morning" and bands[23] == "late"
    assert metrics.mae_by(["a", "a", "b"], [0, 1, 0], [0.5, 1, 1]) == {"a": 0.25, "b": 1.0}


def test_metric_by_uses_the_metric_it_is_given_and_skips_missing_groups():
    groups = pd.Series(["a", "a", "b", None])
    rmse = metrics.metric_by(groups, [0, 1, 0, 5], [0.5, 0, 1, 0], metrics.rmse)
    assert rmse == {"a": pytest.approx(np.sqrt((0.25 + 1) / 2)), "b": 1.0}


@pytest.mark.parametrize("name", sorted(metrics.METRICS))
def test_each_metric_matches_its_scikit_learn_scorer(name):
    """The scorer string (for GridSearchCV, permutation importance) is the metric, signed greater-is-better."""
    metric = metrics.METRICS[name]
    X, y = np.zeros((6, 1)), np.array([0.1, 0.4, 0.2, 0.9, 0.5, 0.3])
    model = DummyRegressor(strategy="constant", constant=0.35).fit(X, y)
    sign = 1.0 if metric.greater_is_better else -1.0
    assert get_scorer(metric.scoring)(model, X, y) == pytest.approx(sign * metric.function(y, model.predict(X)))


TASK = get_task("regression")


def test_the_registered_task_implements_the_protocol():
    assert isinstance(TASK, Task) and set(TASKS) == {"regression"}
    assert (TASK.primary_metric, TASK.greater_is_better, TASK.scoring) == ("mae", False, "neg_mean_absolute_error")
    assert TASK.metric([0.0, 1.0], [0.5, 0.5]) == 0.5
    assert TASK.better(0.02, 0.03) and not TASK.better(0.03, 0.03) and not TASK.better(0.04, 0.03)


def test_segment_scores_are_in_the_tasks_own_metric():
    contract = load_contract(Path(__file__).resolve().parents[2] / "configs" / "contract.yaml")
    frame = pd.DataFrame({contract.time_column: pd.to_datetime(["2024-01-01 01:00", "2024-01-01 02:00",
                                                                "2024-01-01 12:00"]),
                          contract.segment_column: ["airport", "airport", "hospital"],
                          contract.target: [0.0, 1.0, 0.5]})
    pred = np.array([0.0, 0.0, 0.1])
    by_mae = TASK.segment_scores(frame, contract, pred)
    by_rmse = RegressionTask(primary_metric="rmse").segment_scores(frame, contract, pred)
    assert by_mae == {"by_segment": {"airport": 0.5, "hospital": pytest.approx(0.4)},
                      "by_hour_band": {"midday": pytest.approx(0.4), "night": 0.5}}
    assert by_rmse["by_segment"]["airport"] == pytest.approx(np.sqrt(0.5))


def test_a_task_judged_by_r2_prefers_higher_scores():
    task = RegressionTask(primary_metric="r2")
    assert task.greater_is_better and task.scoring == "r2"
    assert task.better(0.9, 0.8) and not task.better(0.8, 0.9)
    decision = decide(task, candidate=0.9, baseline=0.8, champion=ChampionComparison("2", 0.9, 0.85, rows=10),
                      min_improvement=0.05)
    assert decision.promote and decision.metric == "r2"
    assert not decide(task, 0.9, 0.8, ChampionComparison("2", 0.88, 0.85, rows=10), min_improvement=0.05).promote
    assert not decide(task, candidate=0.7, baseline=0.8).promote


def test_a_task_with_an_unknown_metric_is_refused():
    with pytest.raises(ConfigError, match="metric 'mape' is not supported \\(known: mae, r2, rmse\\)"):
        RegressionTask(primary_metric="mape")


def test_promotes_when_it_beats_baseline_and_no_champion():
    decision = decide(TASK, candidate=0.03, baseline=0.05)
    assert decision.promote and "no staging version yet" in decision.reason
    assert decision.as_metadata() == {"promote": True, "reason": decision.reason, "metric": "mae",
                                      "candidate": 0.03, "baseline": 0.05}


def test_refuses_a_model_that_does_not_beat_the_baseline():
    decision = decide(TASK, candidate=0.05, baseline=0.05, champion=ChampionComparison("1", 0.05, 0.09, rows=10))
    assert not decision.promote and "does not beat the baseline's 0.0500" in decision.reason


def test_refuses_a_model_that_does_not_beat_staging():
    decision = decide(TASK, candidate=0.03, baseline=0.05, champion=ChampionComparison("4", 0.03, 0.02, rows=10))
    assert not decision.promote and "staging version 4's 0.0200" in decision.reason
    assert decision.as_metadata()["champion"] == 0.02


def test_promotes_a_challenger_that_beats_staging():
    decision = decide(TASK, candidate=0.02, baseline=0.05, champion=ChampionComparison("4", 0.02, 0.03, rows=10))
    assert decision.promote and "staging version 4's 0.0300" in decision.reason


def test_a_nan_score_is_never_promoted():
    assert not decide(TASK, candidate=float("nan"), baseline=0.05).promote


def test_unknown_task_is_refused():
    with pytest.raises(ConfigError, match="task 'ranking' is not supported \\(known: regression\\)"):
        get_task("ranking")
