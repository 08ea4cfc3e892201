"""The acceptance gate: ceilings, regression margins overall and per segment.

Every call passes a seasonal baseline the candidate beats comfortably
(``BEATEN``), so these tests judge the other checks; the baseline check
itself is in test_gate_baseline.py.
"""

from __future__ import annotations

import pytest

from collabops.errors import ConfigError
from collabops.production import acceptance
from collabops.production.acceptance import judged_metric
from collabops.settings import AcceptanceSettings
from collabops.training.tasks import RegressionTask, get_task

LIMITS = AcceptanceSettings(max_error=0.05, max_regression=0.05, max_segment_regression=0.10)
TASK = get_task("regression")
BEATEN = {"overall": {"mae": 1.0, "r2": -10.0}, "by_segment": {}}
"""A seasonal baseline every candidate here beats by far more than the margin."""


def gate(*args, **kwargs):
    return acceptance.gate(*args, baseline=kwargs.pop("baseline", BEATEN), **kwargs)


def _eval(overall: float, **segments: float) -> dict:
    return {"overall": {"mae": overall}, "by_segment": segments}


def test_first_model_passes_under_the_ceiling():
    report = gate(_eval(0.03, airport=0.04), LIMITS, task=TASK)
    assert report.passed
    assert "no production model to compare with" in report.reasons


def test_above_the_ceiling_fails():
    report = gate(_eval(0.06), LIMITS, task=TASK)
    assert not report.passed and "above the ceiling 0.0500" in report.reasons[0]


def test_worse_than_production_beyond_the_margin_fails():
    report = gate(_eval(0.0320), LIMITS, production=_eval(0.0300), task=TASK)
    assert not report.passed
    assert "worse than production's 0.0300 by more than 5%" in " ".join(report.reasons)


def test_within_the_margin_passes():
    assert gate(_eval(0.0314), LIMITS, production=_eval(0.0300), task=TASK).passed


def test_one_segment_much_worse_fails_even_if_overall_is_better():
    report = gate(_eval(0.028, airport=0.050, residential=0.02), LIMITS,
                  production=_eval(0.030, airport=0.040, residential=0.03), task=TASK)
    assert not report.passed
    assert "segment 'airport'" in " ".join(report.reasons)
    assert "segment 'residential'" not in " ".join(report.reasons)


def test_report_puts_the_four_sources_side_by_side():
    report = gate(_eval(0.03, airport=0.04), LIMITS, production=_eval(0.031, airport=0.041),
                  university=_eval(0.025, airport=0.035), baseline=_eval(0.05, airport=0.06), task=TASK)
    table = report.markdown()
    assert "# Acceptance gate: PASSED" in table
    assert ("| mae on | candidate (our holdout) | seasonal baseline (our holdout) | production (our holdout) "
            "| university (their test) |") in table
    assert "| overall | 0.0300 | 0.0500 | 0.0310 | 0.0250 |" in table
    assert "| airport | 0.0400 | 0.0600 | 0.0410 | 0.0350 |" in table
    assert report.as_metadata()["passed"] is True and report.as_metadata()["applied"] is True
    assert report.as_metadata()["baseline"] == _eval(0.05, airport=0.06)


def test_a_report_the_gate_did_not_decide_says_so():
    """A rollback records the report but is not gated: its heading must not claim the gate passed."""
    import dataclasses

    failed = gate(_eval(0.5), LIMITS, baseline=_eval(0.05), task=TASK)
    assert not failed.passed
    rollback = dataclasses.replace(failed, passed=True, applied=False, failures=[])
    assert rollback.markdown().startswith("# Acceptance gate: NOT APPLIED (rollback)")
    assert "PASSED" not in rollback.markdown() and rollback.as_metadata()["applied"] is False


def test_failures_name_only_what_failed():
    report = gate(_eval(0.0320, airport=0.05, hospital=0.03), LIMITS,
                  production=_eval(0.0300, airport=0.04, hospital=0.03), task=TASK)
    assert not report.passed
    assert len(report.failures) == 2 and all("worse than production" in f for f in report.failures)
    assert report.reasons[:2] == report.failures and "within the ceiling" in report.reasons[2]
    assert "beats the seasonal baseline's 1.0000" in report.reasons[3]
    assert report.as_metadata()["failures"] == report.failures


def test_a_metric_named_in_the_config_judges_as_the_task_would():
    """steps/deployment.py passes the config's metric name positionally; its direction comes from metrics.METRICS."""
    by_name = gate(_eval(0.0320, airport=0.05), LIMITS, "mae", production=_eval(0.0300, airport=0.04))
    by_task = gate(_eval(0.0320, airport=0.05), LIMITS, production=_eval(0.0300, airport=0.04), task=TASK)
    assert by_name.failures == by_task.failures and len(by_name.failures) == 2
    assert judged_metric("rmse", TASK) == ("rmse", False) and judged_metric(None, TASK) == ("mae", False)


def _r2(overall: float, **segments: float) -> dict:
    return {"overall": {"r2": overall, "mae": 0.01}, "by_segment": segments}


def test_a_metric_where_higher_is_better_has_a_floor_and_margins_downwards():
    task = RegressionTask(primary_metric="r2")
    floor = AcceptanceSettings(max_error=0.80, max_regression=0.05, max_segment_regression=0.10)
    assert not gate(_r2(0.79), floor, task=task).passed
    assert "r2 0.7900 on our holdout is below the floor 0.8000" in gate(_r2(0.79), floor, task=task).failures[0]
    assert gate(_r2(0.95), floor, task=task).passed
    # 5 % below production's 0.90 is 0.855: 0.86 passes, 0.85 does not; higher than production always passes.
    assert gate(_r2(0.86), floor, production=_r2(0.90), task=task).passed
    assert not gate(_r2(0.85), floor, production=_r2(0.90), task=task).passed
    assert gate(_r2(0.99, airport=0.99), floor, production=_r2(0.90, airport=0.5), task=task).passed
    report = gate(_r2(0.95, airport=0.70), floor, production=_r2(0.90, airport=0.80), task=task)
    assert report.failures == ["segment 'airport': r2 0.7000 is worse than production's 0.8000 by more than 10%"]


def test_an_unknown_or_missing_metric_is_a_config_error():
    with pytest.raises(ConfigError, match=r"acceptance\.metric 'mape' is not known"):
        gate(_eval(0.03), LIMITS, "mape")
    with pytest.raises(ConfigError, match=r"the seasonal baseline's evaluation has no 'rmse' \(it has mae\)"):
        gate({"overall": {"rmse": 0.03}}, LIMITS, "rmse", task=TASK, baseline=_eval(0.05))
    with pytest.raises(ConfigError, match=r"the candidate's evaluation has no 'rmse' \(it has mae\)"):
        gate(_eval(0.03), LIMITS, "rmse", task=TASK)
    with pytest.raises(ConfigError, match="no metric to judge by"):
        gate(_eval(0.03), LIMITS)
