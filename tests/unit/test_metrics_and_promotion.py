"""Metrics and the champion/challenger rule."""

from __future__ import annotations

import numpy as np
import pytest

from collabops.training import metrics
from collabops.training.promotion import decide
from collabops.training.tasks import get_task
from collabops.errors import ConfigError


def test_regression_metrics_against_hand_computed_values():
    y, pred = np.array([0.0, 0.5, 1.0]), np.array([0.1, 0.5, 0.7])
    scores = metrics.regression_metrics(y, pred)
    assert scores["mae"] == pytest.approx((0.1 + 0 + 0.3) / 3)
    assert scores["rmse"] == pytest.approx(np.sqrt((0.01 + 0.09) / 3))
    assert scores["r2"] == pytest.approx(1 - 0.10 / 0.5)


def test_hour_bands_cover_the_day_and_mae_by_group():
    bands = metrics.hour_band(np.arange(24))
    assert None not in set(bands) and bands[0] == "night" and bands[8] == "morning" and bands[23] == "late"
    assert metrics.mae_by(["a", "a", "b"], [0, 1, 0], [0.5, 1, 1]) == {"a": 0.25, "b": 1.0}


TASK = get_task("regression")


def test_promotes_when_it_beats_baseline_and_no_champion():
    decision = decide(TASK, candidate=0.03, baseline=0.05)
    assert decision.promote and "no staging version yet" in decision.reason


def test_refuses_a_model_that_does_not_beat_the_baseline():
    decision = decide(TASK, candidate=0.05, baseline=0.05, champion=0.09, champion_version="1")
    assert not decision.promote and "does not beat the baseline's 0.0500" in decision.reason


def test_refuses_a_model_that_does_not_beat_staging():
    decision = decide(TASK, candidate=0.03, baseline=0.05, champion=0.02, champion_version="4")
    assert not decision.promote and "staging version 4's 0.0200" in decision.reason
    assert decision.as_metadata()["champion"] == 0.02


def test_promotes_a_challenger_that_beats_staging():
    decision = decide(TASK, candidate=0.02, baseline=0.05, champion=0.03, champion_version="4")
    assert decision.promote and "staging version 4's 0.0300" in decision.reason


def test_unknown_task_is_refused():
    with pytest.raises(ConfigError, match="task 'ranking' is not supported \\(known: regression\\)"):
        get_task("ranking")
