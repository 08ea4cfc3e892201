"""Champion/challenger: a minimum improvement, and a fair comparison on rows the champion did not train on.

The issue's example: a challenger replaced the champion on 0.4 % of MAE while
worse on RMSE and R². Now it must beat the champion by
``promotion.min_improvement`` (a share of the champion's score), and both are
scored only on the test rows outside the champion's training period; with no
such rows (or no known period) the decision says why and does not promote.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from collabops.settings import PromotionSettings
from collabops.training.promotion import (
    ChampionComparison,
    decide,
    improves_by,
    required_score,
    rows_outside,
    training_period,
)
from collabops.training.tasks import RegressionTask, get_task

TASK = get_task("regression")
MIN = PromotionSettings().min_improvement


def test_the_issues_challenger_four_tenths_of_a_percent_better_is_not_promoted():
    champion = ChampionComparison("3", candidate=0.0400 * 0.996, champion=0.0400, rows=1344)
    decision = decide(TASK, candidate=0.0390, baseline=0.0500, champion=champion, min_improvement=MIN)
    assert not decision.promote
    assert decision.reason == (f"not promoted: mae {0.0400 * 0.996:.4f} does not beat staging version 3's 0.0400 by "
                               f"{MIN:.1%} (needs at most {0.0400 * (1 - MIN):.4f}) on the 1,344 test rows it did "
                               "not train on")
    assert decision.as_metadata()["min_improvement"] == MIN and decision.as_metadata()["fair"] is True


def test_a_challenger_that_beats_the_champion_by_the_minimum_is_promoted():
    champion = ChampionComparison("3", candidate=0.0400 * (1 - MIN), champion=0.0400, rows=100, excluded_rows=20)
    decision = decide(TASK, candidate=0.0390, baseline=0.0500, champion=champion, min_improvement=MIN)
    assert decision.promote
    assert decision.reason == (f"promoted to staging: test mae 0.0390 beats the baseline's 0.0500, and "
                               f"{0.0400 * (1 - MIN):.4f} beats staging version 3's 0.0400 by at least {MIN:.1%} on "
                               "the 100 test rows it did not train on (20 inside its training period left out)")
    metadata = decision.as_metadata()
    assert (metadata["comparison_rows"], metadata["excluded_rows"]) == (100, 20)
    assert metadata["candidate_on_comparison_rows"] == pytest.approx(0.0400 * (1 - MIN))


def test_the_champion_comparison_uses_the_scores_on_the_comparison_rows_not_the_whole_test_period():
    """Better on the whole test period, worse on the rows the champion never saw: not promoted."""
    champion = ChampionComparison("2", candidate=0.035, champion=0.030, rows=50, excluded_rows=150)
    decision = decide(TASK, candidate=0.020, baseline=0.050, champion=champion, min_improvement=MIN)
    assert not decision.promote and "mae 0.0350 does not beat staging version 2's 0.0300" in decision.reason


def test_without_rows_the_champion_did_not_train_on_the_decision_says_why_and_does_not_promote():
    unfair = ChampionComparison("5", excluded_rows=300, unfair="all 300 rows of this run's test period fall inside "
                                                               "its training period")
    decision = decide(TASK, candidate=0.001, baseline=0.050, champion=unfair, min_improvement=MIN)
    assert not decision.promote
    assert decision.reason == ("not promoted: no fair comparison with staging version 5: all 300 rows of this run's "
                               "test period fall inside its training period")
    metadata = decision.as_metadata()
    assert metadata["fair"] is False and "champion" not in metadata and "candidate_on_comparison_rows" not in metadata


@pytest.mark.parametrize("candidate, reference, share, expected", [
    (0.0396, 0.0400, 0.01, True),    # exactly 1 % better: enough
    (0.03961, 0.0400, 0.01, False),  # a hair less
    (0.0399, 0.0400, 0.0, True),     # no minimum: any strict improvement
    (0.0400, 0.0400, 0.0, False),    # a tie is not one
    (0.0, 0.0, 0.01, False),         # nor a tie with a perfect score
    (math.nan, 0.0400, 0.01, False),
    (0.0300, math.nan, 0.01, False),
])
def test_improves_by(candidate, reference, share, expected):
    assert improves_by(TASK, candidate, reference, share) is expected


def test_where_higher_is_better_the_minimum_is_a_share_above_the_champion():
    r2 = RegressionTask(primary_metric="r2")
    assert required_score(0.80, 0.05, True) == pytest.approx(0.84)
    assert required_score(-0.20, 0.05, True) == pytest.approx(-0.19)
    assert improves_by(r2, 0.84, 0.80, 0.05) and not improves_by(r2, 0.839, 0.80, 0.05)


def _hours(start: str, n: int, zone: str | None = None) -> pd.DataFrame:
    times = pd.date_range(start, periods=n, freq="h", tz=zone)
    return pd.DataFrame({"timestamp": times, "y": np.arange(n, dtype=float)})


def test_the_training_period_is_the_first_and_last_time_of_train_and_validation():
    train, validation = _hours("2024-01-01", 48), _hours("2024-01-03", 24)
    assert training_period([train, validation], "timestamp") == {"start": "2024-01-01T00:00:00",
                                                                 "end": "2024-01-03T23:00:00"}
    zoned = training_period([_hours("2024-06-01", 2, "Europe/Stockholm")], "timestamp")
    assert zoned == {"start": "2024-06-01T00:00:00+02:00", "end": "2024-06-01T01:00:00+02:00"}
    with pytest.raises(ValueError, match="at least one row"):
        training_period([train.head(0)], "timestamp")


def test_rows_inside_the_champions_training_period_are_left_out_both_ends_included():
    test = _hours("2024-01-10", 10)  # 00:00 .. 09:00
    mask = rows_outside(test, "timestamp", {"start": "2024-01-01T00:00:00", "end": "2024-01-10T03:00:00"})
    assert mask.tolist() == [False] * 4 + [True] * 6
    later = rows_outside(test, "timestamp", {"start": "2024-01-10T05:00:00", "end": "2024-02-01T00:00:00"})
    assert later.tolist() == [True] * 5 + [False] * 5
    zoned = _hours("2024-06-01", 3, "Europe/Stockholm")
    assert rows_outside(zoned, "timestamp", {"start": "2024-06-01T01:00:00+02:00",
                                             "end": "2024-06-02T00:00:00+02:00"}).tolist() == [True, False, False]


@pytest.mark.parametrize("period", [{"start": "2024-01-01"}, {"start": "x", "end": "2024-01-02"}, "2024"])
def test_a_period_that_is_not_two_times_is_a_value_error(period):
    with pytest.raises(ValueError, match="not a training period"):
        rows_outside(_hours("2024-01-10", 3), "timestamp", period)
