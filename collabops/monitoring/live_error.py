"""The live error: the production model's error where outcomes have arrived, next to what was promised.

The promise is the error the bundle's metrics report on the producer's test
period; the acceptance gate's figure on the industry's own holdout is shown
beside it. Both are in the task's primary metric (scikit-learn's function,
``collabops.training.metrics``), overall and per segment of the contract's
segment column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from collabops.data.contract import DataContract
from collabops.training.tasks import Task


@dataclass(frozen=True)
class LiveError:
    """The error on the ``rows`` with outcomes; ``promised`` and ``holdout`` None when not known."""

    metric: str
    value: float
    rows: int
    promised: float | None
    holdout: float | None
    by_segment: dict[str, dict[str, float | int | None]]

    @property
    def ratio(self) -> float | None:
        return self.value / self.promised if self.promised else None

    def describe(self) -> str:
        promised = f"promised {self.promised:.4f}" if self.promised is not None else "no promise in the bundle"
        holdout = f", acceptance holdout {self.holdout:.4f}" if self.holdout is not None else ""
        return (f"live {self.metric.upper()} {self.value:.4f} on {self.rows:,} rows with outcomes ({promised}"
                f"{holdout})")

    def summary(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "rows": self.rows, "promised": self.promised,
                "holdout": self.holdout, "ratio": self.ratio, "by_segment": self.by_segment}


def measure_live_error(frame: pd.DataFrame, contract: DataContract, task: Task, prediction: str,
                       promise: dict[str, Any]) -> LiveError | None:
    """The error of ``frame[prediction]`` against ``frame[contract.target]`` on the rows that have both.

    ``promise``: ``{"overall": float | None, "by_segment": {segment: float},
    "holdout": float | None}`` in the task's primary metric. Returns None
    when no row has an outcome.
    """
    if contract.target not in frame.columns:
        return None
    known = frame[frame[contract.target].notna() & frame[prediction].notna()]
    if not len(known):
        return None
    metric = task.primary_metric
    value = float(task.metric(known[contract.target].to_numpy(float), known[prediction].to_numpy(float)))
    segments: dict[str, dict[str, float | int | None]] = {}
    segment = contract.segment_column
    if segment and segment in known.columns:
        promised = promise.get("by_segment") or {}
        for name, part in known.groupby(segment, observed=True):
            segments[str(name)] = {"value": float(task.metric(part[contract.target].to_numpy(float),
                                                              part[prediction].to_numpy(float))),
                                   "rows": len(part), "promised": promised.get(str(name))}
    return LiveError(metric=metric, value=value, rows=len(known), promised=promise.get("overall"),
                     holdout=promise.get("holdout"), by_segment=segments)
