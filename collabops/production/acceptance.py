"""The industry partner's acceptance gate, on its own holdout.

A model version from the university reaches production only if, on the
holdout the university never saw, its metric is within an absolute limit and
it is not worse than the current production model beyond an allowed margin,
overall and per segment. Which metric, and whether lower or higher is better,
comes from the task (``collabops.training.tasks.Task``: ``primary_metric``,
``greater_is_better``) or, for a metric named in the config, from
``collabops.training.metrics.METRICS``. The report puts the figures side by
side with the university's own, so both partners can see where they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collabops.errors import ConfigError
from collabops.settings import AcceptanceSettings

if TYPE_CHECKING:  # the gate only reads a task's attributes; importing it at run time would pull in scikit-learn
    from collabops.training.tasks import Task


@dataclass
class AcceptanceReport:
    """The verdict, every reason (failures first) and the evaluations it compared."""

    passed: bool
    reasons: list[str]
    metric: str
    candidate: dict[str, Any]
    production: dict[str, Any] | None = None
    university: dict[str, Any] | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        """The report as JSON-able metadata for the model version."""
        return {"passed": self.passed, "reasons": self.reasons, "failures": self.failures, "metric": self.metric,
                "candidate": self.candidate, "production": self.production or {}, "thresholds": self.thresholds}

    def markdown(self) -> str:
        """The report as a table: candidate, production and the university's figures side by side."""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"# Acceptance gate: {verdict}", ""] + [f"- {r}" for r in self.reasons] + [""]
        lines += [f"| {self.metric} on | candidate (our holdout) | production (our holdout) "
                  "| university (their test) |",
                  "|---|---|---|---|"]
        lines.append(self._row("overall", self.candidate.get("overall", {}).get(self.metric),
                               (self.production or {}).get("overall", {}).get(self.metric),
                               (self.university or {}).get("overall", {}).get(self.metric)))
        for segment, value in sorted(self.candidate.get("by_segment", {}).items()):
            lines.append(self._row(segment, value, (self.production or {}).get("by_segment", {}).get(segment),
                                   (self.university or {}).get("by_segment", {}).get(segment)))
        return "\n".join(lines) + "\n"

    @staticmethod
    def _row(name: str, *values: float | None) -> str:
        return f"| {name} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in values) + " |"


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
    """The worst acceptable value: ``margin`` (a share of ``|reference|``) worse than ``reference``."""
    worse = -1.0 if greater_is_better else 1.0
    return reference * (1 + worse * margin) if reference >= 0 else reference * (1 - worse * margin)


def _worse(value: float, limit: float, greater_is_better: bool) -> bool:
    """Whether ``value`` is on the wrong side of ``limit`` (reaching it exactly is acceptable)."""
    return value < limit if greater_is_better else value > limit


def gate(candidate: dict[str, Any], thresholds: AcceptanceSettings, metric: str | None = None,
         production: dict[str, Any] | None = None, university: dict[str, Any] | None = None, *,
         task: Task | None = None) -> AcceptanceReport:
    """Judge a candidate's holdout evaluation (``{"overall": {...}, "by_segment": {...}}``).

    The metric and its direction are ``judged_metric(metric, task)``: pass
    the task, and ``metric`` only to judge by another of its metrics. The
    evaluations hold that metric under ``"overall"`` and per segment under
    ``"by_segment"`` (``collabops.training.evaluation.scores``); ``production``
    is the production model's on the same holdout, ``university`` the
    university's own test figures (shown, never judged). Raises
    ``ConfigError`` for an unknown metric or one the candidate's evaluation
    does not have.
    """
    metric, greater = judged_metric(metric, task)
    if metric not in candidate.get("overall", {}):
        raise ConfigError(f"acceptance: the candidate's evaluation has no '{metric}' (it has "
                          f"{', '.join(sorted(candidate.get('overall', {})))})")
    limit_word = "floor" if greater else "ceiling"
    reasons: list[str] = []
    failures: list[str] = []
    value = float(candidate["overall"][metric])
    if _worse(value, thresholds.max_error, greater):
        side = "below" if greater else "above"
        failures.append(f"{metric} {value:.4f} on our holdout is {side} the {limit_word} {thresholds.max_error:.4f}")
    else:
        reasons.append(f"{metric} {value:.4f} on our holdout is within the {limit_word} {thresholds.max_error:.4f}")
    if production is None:
        reasons.append("no production model to compare with")
    else:
        reference = float(production["overall"][metric])
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
                            failures=failures)
