"""The acceptance gate: ceilings, regression margins overall and per segment."""

from __future__ import annotations

import pytest

from collabops.production.acceptance import AcceptanceThresholds, gate
from collabops.errors import ConfigError

LIMITS = AcceptanceThresholds(max_error=0.05, max_regression=0.05, max_segment_regression=0.10)


def _eval(overall: float, **segments: float) -> dict:
    return {"overall": {"mae": overall}, "by_segment": segments}


def test_first_model_passes_under_the_ceiling():
    report = gate(_eval(0.03, airport=0.04), LIMITS)
    assert report.passed
    assert "no production model to compare with" in report.reasons


def test_above_the_ceiling_fails():
    report = gate(_eval(0.06), LIMITS)
    assert not report.passed and "above the ceiling 0.0500" in report.reasons[0]


def test_worse_than_production_beyond_the_margin_fails():
    report = gate(_eval(0.0320), LIMITS, production=_eval(0.0300))
    assert not report.passed
    assert "worse than production's 0.0300 by more than 5%" in " ".join(report.reasons)


def test_within_the_margin_passes():
    assert gate(_eval(0.0314), LIMITS, production=_eval(0.0300)).passed


def test_one_segment_much_worse_fails_even_if_overall_is_better():
    report = gate(_eval(0.028, airport=0.050, residential=0.02), LIMITS,
                  production=_eval(0.030, airport=0.040, residential=0.03))
    assert not report.passed
    assert "segment 'airport'" in " ".join(report.reasons)
    assert "segment 'residential'" not in " ".join(report.reasons)


def test_report_puts_the_three_sources_side_by_side():
    report = gate(_eval(0.03, airport=0.04), LIMITS, production=_eval(0.031, airport=0.041),
                  university=_eval(0.025, airport=0.035))
    table = report.markdown()
    assert "# Acceptance gate: PASSED" in table
    assert "| overall | 0.0300 | 0.0310 | 0.0250 |" in table
    assert "| airport | 0.0400 | 0.0410 | 0.0350 |" in table
    assert report.as_metadata()["passed"] is True


def test_bad_thresholds_are_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        AcceptanceThresholds.from_dict({"max_mae": 1})
    with pytest.raises(ConfigError, match="must not be negative"):
        AcceptanceThresholds.from_dict({"max_regression": -0.1})


def test_failures_name_only_what_failed():
    report = gate(_eval(0.0320, airport=0.05, hospital=0.03), LIMITS, production=_eval(0.0300, airport=0.04,
                                                                                      hospital=0.03))
    assert not report.passed
    assert len(report.failures) == 2 and all("worse than production" in f for f in report.failures)
    assert report.reasons[:2] == report.failures and "within the ceiling" in report.reasons[2]
    assert report.as_metadata()["failures"] == report.failures
