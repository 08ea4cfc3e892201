"""The industry partner's acceptance gate, on its own holdout.

A model version from the university reaches production only if, on the
holdout the university never saw, its metric is within an absolute limit, it
beats the naive seasonal baseline by a margin (the baseline fitted on the
rows the model was trained on, never on the holdout: :func:`baseline_on_training_rows`),
and it is not worse than the current production model beyond an allowed
margin, overall and per segment. Which metric, and whether lower or higher
is better, comes from the task (``collabops.training.tasks.Task``:
``primary_metric``, ``greater_is_better``) or, for a metric named in the
config, from ``collabops.training.metrics.METRICS``. The report puts the
figures side by side (candidate, baseline, production, and the university's
own), so both partners can see where they disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collabops.errors import ConfigError, DataError
from collabops.settings import AcceptanceSettings

if TYPE_CHECKING:  # the gate only reads a task's attributes; importing it at run time would pull in scikit-learn
    import pandas as pd

    from collabops.data.contract import DataContract
    from collabops.training.tasks import Task


@dataclass
class AcceptanceReport:
    """The verdict, every reason (failures first) and the evaluations it compared.

    ``baseline`` is the seasonal baseline's evaluation on the same holdout,
    ``baseline_fit`` what it was fitted on (:func:`baseline_on_training_rows`).
    """

    passed: bool
    reasons: list[str]
    metric: str
    candidate: dict[str, Any]
    production: dict[str, Any] | None = None
    university: dict[str, Any] | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    baseline_fit: dict[str, Any] | None = None
    applied: bool = True
    """False for a rollback: the report is recorded, the verdict does not decide."""

    def as_metadata(self) -> dict[str, Any]:
        """The report as JSON-able metadata for the model version."""
        return {"passed": self.passed, "applied": self.applied, "reasons": self.reasons,
                "failures": self.failures, "metric": self.metric,
                "candidate": self.candidate, "baseline": self.baseline or {}, "baseline_fit": self.baseline_fit or {},
                "production": self.production or {}, "thresholds": self.thresholds}

    def markdown(self) -> str:
        """The report as a table: candidate, seasonal baseline, production and the university's figures side by side."""
        verdict = ("NOT APPLIED (rollback)" if not self.applied else "PASSED" if self.passed else "FAILED")
        lines = [f"# Acceptance gate: {verdict}", ""] + [f"- {r}" for r in self.reasons] + [""]
        if self.baseline_fit:
            lines += [f"Seasonal baseline: {describe_fit(self.baseline_fit)}.", ""]
        sources = (self.candidate, self.baseline or {}, self.production or {}, self.university or {})
        lines += [f"| {self.metric} on | candidate (our holdout) | seasonal baseline (our holdout) "
                  "| production (our holdout) | university (their test) |",
                  "|---|---|---|---|---|"]
        lines.append(self._row("overall", *(s.get("overall", {}).get(self.metric) for s in sources)))
        for segment in sorted(self.candidate.get("by_segment", {})):
            lines.append(self._row(segment, *(s.get("by_segment", {}).get(segment) for s in sources)))
        return "\n".join(lines) + "\n"

    @staticmethod
    def _row(name: str, *values: float | None) -> str:
        return f"| {name} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in values) + " |"


def describe_fit(fit: dict[str, Any]) -> str:
    """One phrase for what the baseline was fitted on (``baseline_on_training_rows``' second result)."""
    what = (f"{fit['rows']:,} rows from {fit['start']} to {fit['end']}")
    named = fit.get("period")
    where = f" of {fit['source']}" if fit.get("source") else ""
    if named:
        return f"fitted on {what}{where}: the model's training period ({named['start']} to {named['end']})"
    return (f"fitted on all {what}{where}: every row the producer received (a training period it declares is "
            "not checked here, so it never narrows the baseline)")


def judged_metric(metric: str | None = None, task: Task | None = None) -> tuple[str, bool]:
    """The metric the gate judges by and whether higher is better.

    The task's primary metric and direction when ``metric`` is not given or
    is that metric; otherwise ``metric``'s direction from
    ``metrics.METRICS``. ``ConfigError`` for a name neither knows, or when
    neither is given.
    """
    if task is not None and metric in (None, "", task.primary_metric):
        return task.primary_metric, task.greater_is_better
    if not metric:
        raise ConfigError("acceptance: no metric to judge by (give the task or the metric's name)")
    from collabops.training import metrics  # scikit-learn's metrics: only when judging by a metric's name

    if metric not in metrics.METRICS:
        raise ConfigError(f"acceptance.metric '{metric}' is not known (known: {', '.join(sorted(metrics.METRICS))})")
    return metric, metrics.METRICS[metric].greater_is_better


def _allowed(reference: float, margin: float, greater_is_better: bool) -> float:
    """The worst acceptable value: ``margin`` (a share of ``|reference|``) worse than ``reference``.

    A negative ``margin`` asks for that share *better* than ``reference``.
    """
    worse = -1.0 if greater_is_better else 1.0
    return reference * (1 + worse * margin) if reference >= 0 else reference * (1 - worse * margin)


ROUNDING = 1e-12
"""Relative difference below which a value counts as reaching its limit (floating-point rounding)."""


def _worse(value: float, limit: float, greater_is_better: bool) -> bool:
    """Whether ``value`` is on the wrong side of ``limit`` (reaching it is acceptable, up to ``ROUNDING``; NaN is
    always worse)."""
    if math.isnan(value) or math.isnan(limit):
        return True
    if math.isclose(value, limit, rel_tol=ROUNDING):
        return False
    return value < limit if greater_is_better else value > limit


def _score(evaluation: dict[str, Any], metric: str, whose: str) -> float:
    overall = evaluation.get("overall", {})
    if metric not in overall:
        raise ConfigError(f"acceptance: the {whose}'s evaluation has no '{metric}' (it has "
                          f"{', '.join(sorted(overall))})")
    return float(overall[metric])


def gate(candidate: dict[str, Any], thresholds: AcceptanceSettings, metric: str | None = None,
         production: dict[str, Any] | None = None, university: dict[str, Any] | None = None, *,
         task: Task | None = None, baseline: dict[str, Any] | None = None,
         baseline_fit: dict[str, Any] | None = None) -> AcceptanceReport:
    """Judge a candidate's holdout evaluation (``{"overall": {...}, "by_segment": {...}}``).

    The metric and its direction are ``judged_metric(metric, task)``: pass
    the task, and ``metric`` only to judge by another of its metrics. The
    evaluations hold that metric under ``"overall"`` and per segment under
    ``"by_segment"`` (``collabops.training.evaluation.scores``).
    ``baseline`` is the seasonal baseline's evaluation on the same holdout
    (:func:`baseline_on_training_rows`): the candidate must be at least
    ``thresholds.min_gain_over_baseline`` (a share of the baseline's value)
    better than it overall; without it the gate fails, since nothing shows
    that the candidate beats it. ``production`` is the production model's
    evaluation on the same holdout, ``university`` the university's own test
    figures (shown, never judged). A NaN score never passes a check. Raises
    ``ConfigError`` for an unknown metric or one an evaluation does not have.
    """
    metric, greater = judged_metric(metric, task)
    value = _score(candidate, metric, "candidate")
    limit_word = "floor" if greater else "ceiling"
    reasons: list[str] = []
    failures: list[str] = []
    if _worse(value, thresholds.max_error, greater):
        side = "below" if greater else "above"
        failures.append(f"{metric} {value:.4f} on our holdout is {side} the {limit_word} {thresholds.max_error:.4f}")
    else:
        reasons.append(f"{metric} {value:.4f} on our holdout is within the {limit_word} {thresholds.max_error:.4f}")
    _judge_baseline(value, metric, greater, baseline, thresholds.min_gain_over_baseline, reasons, failures)
    if production is None:
        reasons.append("no production model to compare with")
    else:
        reference = _score(production, metric, "production model")
        if _worse(value, _allowed(reference, thresholds.max_regression, greater), greater):
            failures.append(f"{metric} {value:.4f} is worse than production's {reference:.4f} by more than "
                            f"{thresholds.max_regression:.0%}")
        else:
            reasons.append(f"{metric} {value:.4f} vs production's {reference:.4f}: within the "
                           f"{thresholds.max_regression:.0%} margin")
        for segment, segment_value in sorted(candidate.get("by_segment", {}).items()):
            base = production.get("by_segment", {}).get(segment)
            if base is not None and _worse(segment_value, _allowed(base, thresholds.max_segment_regression, greater),
                                           greater):
                failures.append(f"segment '{segment}': {metric} {segment_value:.4f} is worse than production's "
                                f"{base:.4f} by more than {thresholds.max_segment_regression:.0%}")
        if not any(f.startswith("segment ") for f in failures):
            reasons.append(f"every segment within the {thresholds.max_segment_regression:.0%} margin of production")
    return AcceptanceReport(passed=not failures, reasons=failures + reasons, metric=metric, candidate=candidate,
                            production=production, university=university,
                            thresholds=thresholds.model_dump(exclude={"metric"}),
                            failures=failures, baseline=baseline, baseline_fit=baseline_fit)


def _judge_baseline(value: float, metric: str, greater: bool, baseline: dict[str, Any] | None, margin: float,
                    reasons: list[str], failures: list[str]) -> None:
    """The candidate against the seasonal baseline: at most ``(1 - margin)`` x its error (at least ``(1 + margin)``
    x a score where higher is better)."""
    if baseline is None:
        failures.append("the seasonal baseline was not scored on our holdout, so nothing shows that the candidate "
                        "beats it")
        return
    reference = _score(baseline, metric, "seasonal baseline")
    required = _allowed(reference, -margin, greater)
    bound = "at least" if greater else "at most"
    if _worse(value, required, greater):
        failures.append(f"{metric} {value:.4f} does not beat the seasonal baseline's {reference:.4f} on our holdout "
                        f"by {margin:.0%} (needs {bound} {required:.4f})")
        return
    gain = (value - reference if greater else reference - value) / abs(reference) if reference else math.inf
    reasons.append(f"{metric} {value:.4f} beats the seasonal baseline's {reference:.4f} on our holdout by "
                   f"{gain:.1%} (needs {margin:.0%}: {bound} {required:.4f})")


def baseline_on_training_rows(task: Task, contract: DataContract, training: pd.DataFrame, holdout: pd.DataFrame,
                              period: dict[str, Any] | None = None,
                              source: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the task's naive baseline on the training rows, score it on the holdout: (evaluation, what it was fitted on).

    ``training`` holds the rows the model could have been trained on (the
    rows an export wrote into the data bundle, before pseudonymisation, so
    entity ids are those of the holdout); ``period`` (``{"start": ...,
    "end": ...}``, times as text, both inclusive) keeps only the model's
    training period; ``None`` keeps every row. The evaluation has the shape
    of ``collabops.training.evaluation.scores``; the second result is
    ``{"rows", "start", "end", "period", "source"}`` (``period`` as given,
    ``source`` as given). Raises ``DataError`` when ``period`` is not two
    times, when no training row falls in it, or when a training row is not
    older than every holdout row (the baseline never sees the holdout).
    """
    from collabops.training.evaluation import evaluate

    time = contract.time_column
    where = f" of {source}" if source else ""
    moment = _times(training[time])
    rows = training
    if period is not None:
        start, end = _bound(period, "start", moment), _bound(period, "end", moment)
        rows = training[((moment >= start) & (moment <= end)).to_numpy()]
        if rows.empty:
            raise DataError(f"no row{where} falls in the model's training period {period['start']} to "
                            f"{period['end']} (the rows run from {moment.min()} to {moment.max()}); the seasonal "
                            "baseline cannot be fitted on the data the model was trained on")
    if rows.empty:
        raise DataError(f"no training rows{where}: the seasonal baseline cannot be fitted")
    first_holdout = _times(holdout[time]).min()
    seen = _times(rows[time])
    if (seen >= first_holdout).any():
        raise DataError(f"{int((seen >= first_holdout).sum())} training row(s){where} are not older than the "
                        f"holdout (which starts at {first_holdout}); the baseline is never fitted on the holdout")
    baseline = task.make_baseline(contract).fit(rows[contract.feature_columns], rows[contract.target])
    fit = {"rows": len(rows), "start": str(seen.min()), "end": str(seen.max()), "period": period, "source": source}
    return evaluate(task, contract, baseline, holdout), fit


def _times(values: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_datetime(values)


def _bound(period: dict[str, Any], key: str, moment: pd.Series) -> pd.Timestamp:
    """``period[key]`` as a time comparable with ``moment``: in its zone, or (naive rows) its wall time as written."""
    import pandas as pd

    try:
        bound = pd.Timestamp(period[key])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"the model's training period {period!r} has no valid '{key}' time") from None
    if pd.isna(bound):
        raise DataError(f"the model's training period {period!r} has no valid '{key}' time")
    zone = moment.dt.tz
    if zone is not None:
        return bound.tz_localize(zone) if bound.tz is None else bound.tz_convert(zone)
    return bound.tz_localize(None) if bound.tz is not None else bound  # naive rows: wall times, kept as written
