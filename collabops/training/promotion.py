"""Champion/challenger: when a new model version may become ``staging``.

A candidate is promoted only if it beats both the naive baseline and the
current ``staging`` model on the same test period, by the task's primary
metric. Which metric, and whether higher or lower wins, is the task's to say
(``Task.primary_metric``, ``Task.better``); nothing here assumes an error.
The decision carries its reason, for the log and the version's metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from collabops.training.tasks import Task


@dataclass(frozen=True)
class PromotionDecision:
    """The verdict, its reason, and the scores it compared (all in ``metric``'s unit, test period)."""

    promote: bool
    reason: str
    metric: str
    candidate: float
    baseline: float
    champion: float | None = None
    champion_version: str | None = None

    def as_metadata(self) -> dict[str, Any]:
        """The fields that are set, for the model version's metadata."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def decide(task: Task, candidate: float, baseline: float,
           champion: float | None = None, champion_version: str | None = None) -> PromotionDecision:
    """Compare a candidate's score with the baseline's and the current champion's.

    Scores are ``task.primary_metric`` on the same test period. Promoted only
    if ``task.better(candidate, baseline)`` and, when there is a champion,
    ``task.better(candidate, champion)``: a tie is not an improvement, and a
    NaN score never beats anything.
    """
    metric = task.primary_metric
    common: dict[str, Any] = {"metric": metric, "candidate": candidate, "baseline": baseline,
                              "champion": champion, "champion_version": champion_version}
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
    if not task.better(candidate, champion):
        return PromotionDecision(
            promote=False,
            reason=(f"not promoted: test {metric} {candidate:.4f} does not beat staging version "
                    f"{champion_version}'s {champion:.4f} on the same test period"),
            **common,
        )
    return PromotionDecision(
        promote=True,
        reason=(f"promoted to staging: test {metric} {candidate:.4f} beats the baseline's {baseline:.4f} "
                f"and staging version {champion_version}'s {champion:.4f} on the same test period"),
        **common,
    )
