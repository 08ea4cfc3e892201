"""Champion/challenger: when a new model version may become ``staging``.

A candidate is promoted only if it beats the naive baseline on its test
period and the current ``staging`` model (the champion) by at least the
project's ``promotion.min_improvement`` (a share of the champion's score).
The champion is compared fairly: both models are scored only on the rows of
the candidate's test period that the champion did not train on (rows inside
the champion's recorded training period are left out,
:func:`rows_outside`); when no row is left, or the champion's training period
is not known, or it cannot be scored, the decision says so and does not
promote. Which metric, and whether higher or lower wins, is the task's to
say (``Task.primary_metric``, ``Task.better``); nothing here assumes an
error. The decision carries its reason, for the log and the version's
metadata.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from collabops.training.tasks import Task

ROUNDING = 1e-12
"""Relative difference below which a score counts as reaching the required one (floating-point rounding)."""


@dataclass(frozen=True)
class ChampionComparison:
    """The candidate and the champion on the same rows of the test period, none of which the champion trained on.

    ``candidate`` and ``champion`` are ``Task.primary_metric`` on those
    ``rows`` (``excluded_rows`` of the test period fell in the champion's
    training period and were left out). ``unfair`` says why there is no fair
    comparison (then the scores are NaN and the candidate is not promoted).
    """

    version: str
    candidate: float = math.nan
    champion: float = math.nan
    rows: int = 0
    excluded_rows: int = 0
    unfair: str | None = None


@dataclass(frozen=True)
class PromotionDecision:
    """The verdict, its reason, and the scores it compared (in ``metric``'s unit).

    ``candidate`` and ``baseline`` are on the whole test period;
    ``candidate_on_comparison_rows`` and ``champion`` on the
    ``comparison_rows`` the champion did not train on.
    """

    promote: bool
    reason: str
    metric: str
    candidate: float
    baseline: float
    champion: float | None = None
    champion_version: str | None = None
    candidate_on_comparison_rows: float | None = None
    comparison_rows: int | None = None
    excluded_rows: int | None = None
    min_improvement: float | None = None
    fair: bool | None = None

    def as_metadata(self) -> dict[str, Any]:
        """The fields that are set, for the model version's metadata (NaN scores left out)."""
        return {k: v for k, v in asdict(self).items()
                if v is not None and not (isinstance(v, float) and math.isnan(v))}


def required_score(reference: float, share: float, greater_is_better: bool) -> float:
    """The score that beats ``reference`` by ``share`` of ``|reference|``: at most ``(1 - share) x`` an error."""
    better = 1.0 if greater_is_better else -1.0
    return reference + better * share * abs(reference)


def improves_by(task: Task, candidate: float, reference: float, share: float) -> bool:
    """Whether ``candidate`` beats ``reference`` by at least ``share`` of it (reaching that exactly counts).

    Reaching it is judged up to floating-point rounding (``ROUNDING``). A
    tie is never an improvement (not even against a perfect score of 0), and
    a NaN never improves.
    """
    if math.isnan(candidate) or math.isnan(reference) or not task.better(candidate, reference):
        return False
    required = required_score(reference, share, task.greater_is_better)
    if math.isclose(candidate, required, rel_tol=ROUNDING):
        return True
    return candidate >= required if task.greater_is_better else candidate <= required


def training_period(frames: list[pd.DataFrame], time_column: str) -> dict[str, str]:
    """``{"start": first time, "end": last time}`` (ISO text) of the rows a model was fitted on.

    Raises ``ValueError`` when there are no rows.
    """
    times = pd.concat([pd.to_datetime(f[time_column]) for f in frames], ignore_index=True).dropna()
    if times.empty:
        raise ValueError("a model's training period needs at least one row with a time")
    return {"start": times.min().isoformat(), "end": times.max().isoformat()}


def rows_outside(frame: pd.DataFrame, time_column: str, period: dict[str, Any]) -> np.ndarray:
    """Boolean mask, shape ``(len(frame),)``: rows whose time is before ``period["start"]`` or after its ``"end"``.

    Both ends are inclusive times (text, as :func:`training_period` writes
    them). Raises ``ValueError`` for a period without two valid times.
    """
    moment = pd.to_datetime(frame[time_column])
    try:
        start, end = pd.Timestamp(period["start"]), pd.Timestamp(period["end"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"not a training period (two times, 'start' and 'end'): {period!r}") from None
    if pd.isna(start) or pd.isna(end):
        raise ValueError(f"not a training period (two times, 'start' and 'end'): {period!r}")
    zone = moment.dt.tz
    start, end = (_in_zone(t, zone) for t in (start, end))
    return ((moment < start) | (moment > end)).to_numpy()


def _in_zone(moment: pd.Timestamp, zone: Any) -> pd.Timestamp:
    """``moment`` comparable with times in ``zone``: converted to it, or (naive times) its wall time as written."""
    if zone is not None:
        return moment.tz_localize(zone) if moment.tz is None else moment.tz_convert(zone)
    return moment.tz_localize(None) if moment.tz is not None else moment


def decide(task: Task, candidate: float, baseline: float, champion: ChampionComparison | None = None,
           min_improvement: float = 0.0) -> PromotionDecision:
    """Compare a candidate's score with the baseline's and, fairly, with the current champion's.

    ``candidate`` and ``baseline`` are ``task.primary_metric`` on the test
    period. Promoted only if ``task.better(candidate, baseline)`` and, when
    there is a champion, the comparison is fair and the candidate beats the
    champion on the comparison rows by at least ``min_improvement`` (a share
    of the champion's score; 0 means any strict improvement). A tie is not an
    improvement, and a NaN score never beats anything.
    """
    metric = task.primary_metric
    common: dict[str, Any] = {"metric": metric, "candidate": candidate, "baseline": baseline}
    if champion is not None:
        common.update(champion=champion.champion, champion_version=champion.version,
                      candidate_on_comparison_rows=champion.candidate, comparison_rows=champion.rows,
                      excluded_rows=champion.excluded_rows, min_improvement=min_improvement,
                      fair=champion.unfair is None)
    if not task.better(candidate, baseline):
        return PromotionDecision(
            promote=False,
            reason=f"not promoted: test {metric} {candidate:.4f} does not beat the baseline's {baseline:.4f}",
            **common,
        )
    if champion is None:
        return PromotionDecision(
            promote=True,
            reason=(f"promoted to staging: test {metric} {candidate:.4f} beats the baseline's {baseline:.4f} "
                    "and there is no staging version yet"),
            **common,
        )
    if champion.unfair is not None:
        return PromotionDecision(
            promote=False,
            reason=(f"not promoted: no fair comparison with staging version {champion.version}: {champion.unfair}"),
            **common,
        )
    rows = (f"{champion.rows:,} test rows it did not train on"
            + (f" ({champion.excluded_rows:,} inside its training period left out)" if champion.excluded_rows else ""))
    if not improves_by(task, champion.candidate, champion.champion, min_improvement):
        needed = required_score(champion.champion, min_improvement, task.greater_is_better)
        bound = "at least" if task.greater_is_better else "at most"
        return PromotionDecision(
            promote=False,
            reason=(f"not promoted: {metric} {champion.candidate:.4f} does not beat staging version "
                    f"{champion.version}'s {champion.champion:.4f} by {min_improvement:.1%} (needs {bound} "
                    f"{needed:.4f}) on the {rows}"),
            **common,
        )
    return PromotionDecision(
        promote=True,
        reason=(f"promoted to staging: test {metric} {candidate:.4f} beats the baseline's {baseline:.4f}, and "
                f"{champion.candidate:.4f} beats staging version {champion.version}'s {champion.champion:.4f} by "
                f"at least {min_improvement:.1%} on the {rows}"),
        **common,
    )
