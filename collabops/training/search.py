"""A small, time-respecting hyperparameter search.

Each candidate is fitted on the training period and scored on the later
validation period (no shuffled cross-validation, which would leak the future
into the past); the best is refitted on training plus validation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline

from collabops.data.contract import DataContract
from collabops.errors import ConfigError
from collabops.training.features import build_model
from collabops.training.tasks import Task

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchSettings:
    """Fixed estimator parameters and the grid to search over."""

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> "SearchSettings":
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"base", "grid"})
        if unknown:
            raise ConfigError(f"search: unknown setting(s) {', '.join(unknown)} (use 'base' and 'grid')")
        grid = dict(raw.get("grid") or {})
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"search.grid.{name} must be a non-empty list of values")
        return cls(base=dict(raw.get("base") or {}), grid=grid)

    def candidates(self) -> list[dict[str, Any]]:
        return [{**self.base, **combo} for combo in ParameterGrid(self.grid)] if self.grid else [dict(self.base)]


@dataclass
class SearchResult:
    model: Pipeline
    best_params: dict[str, Any]
    trials: pd.DataFrame


def search(task: Task, contract: DataContract, train: pd.DataFrame, validation: pd.DataFrame,
           settings: SearchSettings) -> SearchResult:
    """Try every candidate, keep the best on validation, refit it on train + validation."""
    features, target = contract.feature_columns, contract.target
    candidates = settings.candidates()
    rows = []
    for i, params in enumerate(candidates, start=1):
        started = time.perf_counter()
        model = build_model(contract, task.make_estimator(params))
        model.fit(train[features], train[target])
        score = task.score(validation[target].to_numpy(), model.predict(validation[features]))[task.primary_metric]
        seconds = time.perf_counter() - started
        logger.info("candidate %d/%d %s: validation %s %.4f (%.1f s)",
                    i, len(candidates), params, task.primary_metric, score, seconds)
        rows.append({"candidate": i, **{k: params.get(k) for k in settings.grid},
                     f"validation_{task.primary_metric}": score, "seconds": round(seconds, 2)})
    trials = pd.DataFrame(rows)
    column = f"validation_{task.primary_metric}"
    best_row = trials[column].idxmax() if task.greater_is_better else trials[column].idxmin()
    best_params = candidates[int(best_row)]
    logger.info("best candidate %d %s; refitting on training + validation", best_row + 1, best_params)
    both = pd.concat([train, validation], ignore_index=True)
    model = build_model(contract, task.make_estimator(best_params))
    model.fit(both[features], both[target])
    return SearchResult(model=model, best_params=best_params, trials=trials)
