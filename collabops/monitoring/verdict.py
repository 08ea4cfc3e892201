"""The verdict: ``ok``, ``warning`` or ``drift``, with every reason, by the thresholds in the project file.

``drift`` (the model no longer fits its data; retraining is asked for):
the prediction drifted, or at least ``drift_share`` of the monitored features
did (Evidently's dataset-drift rule), or the live error is above
``max_error_ratio`` times the promised error on at least ``min_outcome_rows``
rows.

``warning`` (look at it; retraining would not be the answer by itself): a
feature drifted below that share; a quality problem (a missing feature,
nulls, or new categories or values outside the reference's range in more
than ``max_new_share`` of the rows); the live error above
``warning_error_ratio`` times the promise, or a segment's above
``max_segment_error_ratio`` times its promise;
the reference does not cover the season; fewer than ``min_rows`` rows (too
few to judge drift, which is then not used); a part of the input could not
be read.

``ok`` otherwise, and its reasons still say what was measured, including
that no live error could be measured when no outcomes have arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from collabops.monitoring.drift import DriftResult
from collabops.monitoring.live_error import LiveError
from collabops.monitoring.quality import QualityProblem
from collabops.monitoring.season import Season
from collabops.settings import MonitoringSettings

VerdictName = Literal["ok", "warning", "drift"]
_ORDER = {"ok": 0, "warning": 1, "drift": 2}


@dataclass
class Verdict:
    """The decision and its reasons, most severe first."""

    verdict: VerdictName = "ok"
    reasons: list[str] = field(default_factory=list)
    _levels: list[int] = field(default_factory=list, repr=False)

    def add(self, level: VerdictName, reason: str) -> None:
        self.reasons.append(reason)
        self._levels.append(_ORDER[level])
        if _ORDER[level] > _ORDER[self.verdict]:
            self.verdict = level

    def ordered(self) -> list[str]:
        order = sorted(range(len(self.reasons)), key=lambda i: (-self._levels[i], i))
        return [self.reasons[i] for i in order]


def decide(rows: int, drift: DriftResult, season: Season, quality: list[QualityProblem], live: LiveError | None,
           settings: MonitoringSettings, notes: list[str] = ()) -> Verdict:  # type: ignore[assignment]
    """The verdict on a period of ``rows`` rows (see the module docstring for the rules)."""
    verdict = Verdict()
    enough = rows >= settings.min_rows
    if not enough:
        verdict.add("warning", f"only {rows:,} rows in the period, fewer than monitoring.min_rows "
                               f"({settings.min_rows:,}): too few to judge drift")
    drifted = drift.drifted_features
    if enough and drift.prediction_drifted:
        column = next(c for c in drift.columns if c.column == drift.prediction_column)
        verdict.add("drift", f"prediction drift: {column.describe()}")
    if enough and drifted and drift.drifted_share >= settings.drift_share:
        verdict.add("drift", f"{len(drifted)} of {len(drift.features)} features drifted "
                             f"({drift.drifted_share:.0%} >= monitoring.drift_share {settings.drift_share:.0%})")
    elif enough and drifted:
        verdict.add("warning", f"{len(drifted)} of {len(drift.features)} features drifted "
                               f"({drift.drifted_share:.0%} < monitoring.drift_share {settings.drift_share:.0%})")
    for column in drift.features:
        if column.drifted and enough:
            verdict.add("warning", f"drift in {column.describe()}")
    if not season.covered:
        verdict.add("warning", season.describe())
    for problem in quality:
        level = "warning" if problem.check in ("missing", "nulls") or problem.rows > settings.max_new_share * rows \
            else "ok"
        verdict.add(level, f"data quality: {problem.describe()}" + ("" if level == "warning" else
                                                                     f" (at most monitoring.max_new_share "
                                                                     f"{settings.max_new_share:.0%} of the rows)"))
    for note in notes:
        verdict.add("warning", note)
    _judge_live_error(verdict, live, settings)
    if verdict.verdict == "ok":
        largest = max(drift.columns, key=lambda c: c.distance / c.threshold, default=None)
        if largest is not None:
            verdict.add("ok", f"no column drifted; the closest: {largest.describe()}")
    return verdict


def _judge_live_error(verdict: Verdict, live: LiveError | None, settings: MonitoringSettings) -> None:
    if live is None:
        verdict.add("ok", "live error not measured: no row of the period has its outcome yet")
        return
    if live.rows < settings.min_outcome_rows:
        verdict.add("ok", f"{live.describe()}: fewer than monitoring.min_outcome_rows "
                          f"({settings.min_outcome_rows}), not judged")
        return
    ratio = live.ratio
    if ratio is None:
        verdict.add("warning", f"{live.describe()}: the bundle states no error to compare with")
    elif ratio > settings.max_error_ratio:
        verdict.add("drift", f"{live.describe()}: {ratio:.2f} x the promise, above monitoring.max_error_ratio "
                             f"{settings.max_error_ratio:g}")
    elif ratio > settings.warning_error_ratio:
        verdict.add("warning", f"{live.describe()}: {ratio:.2f} x the promise, above "
                               f"monitoring.warning_error_ratio {settings.warning_error_ratio:g}")
    else:
        verdict.add("ok", f"{live.describe()}: within the promise ({ratio:.2f} x)")
    for segment, figures in live.by_segment.items():
        promised, value, rows = figures.get("promised"), figures["value"], figures["rows"]
        if promised and rows >= settings.min_outcome_rows and value > settings.max_segment_error_ratio * float(
                promised):
            verdict.add("warning", f"segment {segment}: live {live.metric.upper()} {value:.4f} on {rows:,} rows, "
                                   f"{value / float(promised):.2f} x its promised {float(promised):.4f}")


def summary(verdict: Verdict) -> dict[str, Any]:
    return {"verdict": verdict.verdict, "reasons": verdict.ordered()}
