"""Each rule of the verdict in isolation, on small constructed drift results, seasons and live errors.

The settings are the project's (``configs/parking.yaml``), so the rules are
checked at the thresholds the project runs with; each case moves one input
across one threshold and leaves the rest quiet.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from collabops.exchange.data_bundle import RetrainingRequestError, checked_retraining_request
from collabops.monitoring.drift import ColumnDrift, DriftResult
from collabops.monitoring.live_error import LiveError
from collabops.monitoring.quality import QualityProblem
from collabops.monitoring.request import retraining_request
from collabops.monitoring.season import Season
from collabops.monitoring.verdict import decide, summary
from collabops.settings import load_project
from tests.conftest import PROJECT

SETTINGS = load_project(PROJECT).monitoring
FEATURES = ["capacity", "temperature_c", "rain_mm", "price_per_hour"]
ROWS = 10_000
COVERED = Season(rows=pd.DataFrame(), covered=True, window_days=21, first="2024-01-01T00:00:00+01:00",
                 last="2024-02-21T23:00:00+01:00")
UNCOVERED = Season(rows=pd.DataFrame(), covered=False, window_days=21, first="2024-02-01T00:00:00+01:00",
                   last="2024-02-29T23:00:00+01:00")


def _column(name: str, drifted: bool, threshold: float = 0.1) -> ColumnDrift:
    distance = threshold * (1.5 if drifted else 0.5)
    return ColumnDrift(name, "numerical", "wasserstein", threshold, distance, drifted, distance, None, True)


def _drift(drifted: tuple[str, ...] = (), prediction: bool = False) -> DriftResult:
    columns = [_column(c, c in drifted) for c in FEATURES] + [_column("prediction", prediction)]
    return DriftResult(columns=columns, reference_rows=20_000, current_rows=ROWS, sample_rows=ROWS,
                       prediction_column="prediction")


def _live(ratio: float, rows: int = 5_000, promised: float | None = 0.04, segments=None) -> LiveError:
    return LiveError(metric="mae", value=0.04 * ratio, rows=rows, promised=promised, holdout=0.045,
                     by_segment=segments or {})


def _decide(drift=None, season=COVERED, quality=(), live="good", rows=ROWS, notes=()):
    live = _live(1.0) if live == "good" else live
    return decide(rows, drift or _drift(), season, list(quality), live, SETTINGS, list(notes))


def test_nothing_wrong_is_ok_with_reasons():
    verdict = _decide()
    assert verdict.verdict == "ok"
    assert any("within the promise" in r for r in verdict.reasons)
    assert any(r.startswith("no column drifted; the closest:") for r in verdict.reasons)


def test_prediction_drift_is_drift():
    verdict = _decide(_drift(prediction=True))
    assert verdict.verdict == "drift" and verdict.ordered()[0].startswith("prediction drift: prediction")


def test_a_share_of_drifted_features_at_drift_share_is_drift():
    assert SETTINGS.drift_share == 0.5
    verdict = _decide(_drift(("capacity", "rain_mm")))  # 2 of 4 = 50 %
    assert verdict.verdict == "drift" and "2 of 4 features drifted" in verdict.ordered()[0]


def test_one_drifted_feature_is_a_warning_naming_it():
    verdict = _decide(_drift(("temperature_c",)))
    assert verdict.verdict == "warning"
    assert any(r.startswith("drift in temperature_c") for r in verdict.reasons)
    assert any("1 of 4 features drifted" in r for r in verdict.reasons)


@pytest.mark.parametrize("ratio, level, words", [
    (1.30, "drift", "above monitoring.max_error_ratio"),
    (1.20, "warning", "above monitoring.warning_error_ratio"),
    (1.05, "ok", "within the promise"),
])
def test_the_live_error_against_the_promise(ratio, level, words):
    assert SETTINGS.warning_error_ratio < 1.20 < SETTINGS.max_error_ratio < 1.30
    verdict = _decide(live=_live(ratio))
    assert verdict.verdict == level
    reason = next(r for r in verdict.reasons if r.startswith("live MAE"))
    assert words in reason and f"{ratio:.2f} x" in reason
    if level != "ok":
        assert verdict.ordered()[0] == reason


def test_a_live_error_on_too_few_outcomes_is_not_judged():
    verdict = _decide(live=_live(3.0, rows=SETTINGS.min_outcome_rows - 1))
    assert verdict.verdict == "ok"
    assert any("not judged" in r for r in verdict.reasons)


def test_a_live_error_without_a_promise_is_a_warning():
    verdict = _decide(live=_live(1.0, promised=None))
    assert verdict.verdict == "warning" and any("states no error to compare with" in r for r in verdict.reasons)


def test_a_segment_far_above_its_promise_is_a_warning():
    segments = {"airport": {"value": 0.08, "rows": 500, "promised": 0.04}}
    verdict = _decide(live=_live(1.0, segments=segments))
    assert verdict.verdict == "warning" and any(r.startswith("segment airport") for r in verdict.reasons)


def test_too_few_rows_warns_and_drift_is_not_used():
    rows = SETTINGS.min_rows - 1
    verdict = _decide(_drift(("capacity", "rain_mm", "temperature_c"), prediction=True), rows=rows)
    assert verdict.verdict == "warning"
    assert "too few to judge drift" in verdict.ordered()[0]
    assert not any("prediction drift" in r or r.startswith("drift in") for r in verdict.reasons)


def test_a_season_the_reference_does_not_cover_is_a_warning():
    verdict = _decide(season=UNCOVERED)
    assert verdict.verdict == "warning" and UNCOVERED.describe() in verdict.reasons


def test_a_missing_feature_is_a_warning():
    problem = QualityProblem("temperature_c", "missing", ROWS, "missing from the current data")
    assert _decide(quality=[problem]).verdict == "warning"
    nulls = QualityProblem("rain_mm", "nulls", 900, "9.0% nulls against 1.0% in the reference")
    assert _decide(quality=[nulls]).verdict == "warning"


def test_new_categories_below_max_new_share_are_listed_but_ok():
    few = int(SETTINGS.max_new_share * ROWS)  # at the share, not above it
    problem = QualityProblem("car_park_kind", "new_categories", few, "1 value(s) never seen: 'hospital'")
    verdict = _decide(quality=[problem])
    assert verdict.verdict == "ok"
    assert any("'hospital'" in r and "monitoring.max_new_share" in r for r in verdict.reasons)
    many = QualityProblem("car_park_kind", "new_categories", few + 1, "1 value(s) never seen: 'hospital'")
    assert _decide(quality=[many]).verdict == "warning"


def test_a_note_is_a_warning():
    note = "inference-log file inference-x.parquet cannot be read (cut off); left out"
    verdict = _decide(notes=[note])
    assert verdict.verdict == "warning" and verdict.ordered()[0] == note


@pytest.mark.parametrize("case", [{}, {"live": None}, {"live": "few"}])
def test_an_ok_verdict_always_has_reasons(case):
    live = {"live": _live(1.0, rows=1)} if case.get("live") == "few" else case
    verdict = _decide(**live)
    assert verdict.verdict == "ok" and len(verdict.reasons) >= 2
    assert all(r.strip() for r in verdict.reasons)


def test_no_outcomes_says_so():
    assert any("live error not measured: no row of the period has its outcome yet" in r
               for r in _decide(live=None).reasons)


def test_reasons_are_ordered_most_severe_first():
    note = "a note"
    verdict = _decide(_drift(("temperature_c",)), season=UNCOVERED, live=_live(1.5), notes=[note])
    ordered = summary(verdict)["reasons"]
    assert summary(verdict)["verdict"] == "drift"
    assert "above monitoring.max_error_ratio" in ordered[0]
    severities = []
    for reason in ordered:
        severities.append(2 if "max_error_ratio" in reason else 0 if "no column drifted" in reason else 1)
    assert severities == sorted(severities, reverse=True)
    assert set(ordered) == set(verdict.reasons) and len(ordered) == len(verdict.reasons)


PERIOD = {"start": "2025-02-01T00:00:00+01:00", "end": "2025-02-28T23:00:00+01:00"}


@pytest.mark.parametrize("live", [_live(1.5), None])
def test_the_retraining_request_is_accepted_by_the_bundle_schema(live):
    verdict = _decide(_drift(("temperature_c", "price_per_hour")), live=live)
    assert verdict.verdict == "drift" or live is None
    request = retraining_request(verdict.verdict if live else "drift", verdict.ordered(),
                                 ["temperature_c", "price_per_hour"], PERIOD, "3", "bundle-1",
                                 live.summary() if live else None, "monitoring-run-1",
                                 now=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    checked = checked_retraining_request(request)
    assert checked["reason"] == verdict.ordered()[0]
    assert checked["drifted_features"] == ["temperature_c", "price_per_hour"]
    assert checked["period"] == PERIOD
    if live is None:
        assert checked["live_error"] is None
    else:
        assert checked["live_error"]["value"] == pytest.approx(live.value)
        assert checked["live_error"]["rows"] == live.rows


def test_the_schema_would_refuse_a_request_for_an_ok_verdict():
    """The check is not vacuous: an ``ok`` cannot ask for retraining."""
    request = retraining_request("ok", ["fine"], [], PERIOD, "3", None, None, "run")
    with pytest.raises(RetrainingRequestError, match="verdict"):
        checked_retraining_request(request)
