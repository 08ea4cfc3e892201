"""A small, time-respecting hyperparameter search: ``GridSearchCV`` on one predefined split.

Each candidate is fitted on the training period and scored on the later
validation period (no shuffled cross-validation, which would leak the future
into the past): ``GridSearchCV`` over train + validation with a
``PredefinedSplit`` whose only fold is the validation rows (train rows are
``-1``, "never in a test fold"). The scorer is the task's
(``task.scoring``), and ``refit=True`` refits the best candidate on all the
data passed, which is training plus validation.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collabops.errors import ConfigError

if TYPE_CHECKING:  # scikit-learn and pandas load when a search runs, not when a config is read
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from collabops.data.contract import DataContract
    from collabops.training.tasks import Task

logger = logging.getLogger(__name__)

# The estimator's step in build_model's Pipeline; grid names are prefixed with it for GridSearchCV.
STEP = "estimator"


@dataclass(frozen=True)
class SearchSettings:
    """Fixed estimator parameters and the grid to search over."""

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> SearchSettings:
        """From the config's ``search`` block; ``ConfigError`` for unknown keys or an empty/non-list grid entry."""
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
        """Every candidate's full parameters (base merged with one grid combination), in ``ParameterGrid`` order."""
        if not self.grid:
            return [dict(self.base)]
        names = sorted(self.grid)  # ParameterGrid's order: keys sorted, the last one varying fastest
        return [{**self.base, **dict(zip(names, values, strict=True))}
                for values in itertools.product(*(self.grid[name] for name in names))]


@dataclass
class SearchResult:
    """The refitted best model, its full parameters and one row per candidate.

    ``trials`` columns: ``candidate`` (1, 2, ...), one column per grid
    parameter, ``validation_<metric>`` (the task's primary metric on the
    validation period, with its natural sign: an error is positive) and
    ``seconds`` (fit plus scoring time of the candidate).
    """

    model: Pipeline
    best_params: dict[str, Any]
    trials: pd.DataFrame


def search(task: Task, contract: DataContract, train: pd.DataFrame, validation: pd.DataFrame,
           settings: SearchSettings) -> SearchResult:
    """Try every candidate on the validation period, keep the best, refit it on train + validation.

    ``train`` and ``validation`` hold the contract's feature columns and
    target; validation must follow training in time (``data.split``).
    Raises ``ConfigError`` for a parameter the task's estimator does not
    take (before anything is fitted); errors while fitting a candidate are
    raised, not scored as NaN (``error_score="raise"``). Ties go to the
    earlier candidate, as ``GridSearchCV``'s ``best_index_`` does.
    """
    features, target = contract.feature_columns, contract.target
    for params in settings.candidates():
        task.make_estimator(params)  # ConfigError naming an unknown parameter, before any fitting
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import GridSearchCV, PredefinedSplit

    from collabops.training.features import build_model

    both = pd.concat([train, validation], ignore_index=True)
    # PredefinedSplit: -1 = always in training, 0 = the one test fold.
    fold = np.concatenate([np.full(len(train), -1), np.zeros(len(validation), dtype=int)])
    grid = GridSearchCV(
        build_model(contract, task.make_estimator(settings.base)),
        param_grid={f"{STEP}__{name}": values for name, values in settings.grid.items()},
        scoring=task.scoring,
        cv=PredefinedSplit(fold),
        refit=True,  # on everything passed to fit: training + validation
        n_jobs=1,  # two cores, and HistGradientBoosting already uses both through OpenMP
        error_score="raise",
    )
    grid.fit(both[features], both[target])

    metric = task.primary_metric
    sign = 1.0 if task.greater_is_better else -1.0  # scorers are "greater is better": an error comes negated
    results = grid.cv_results_
    rows = []
    for i, params in enumerate(results["params"]):
        grid_params = {name.removeprefix(f"{STEP}__"): value for name, value in params.items()}
        score = sign * float(results["split0_test_score"][i])
        seconds = float(results["mean_fit_time"][i] + results["mean_score_time"][i])
        logger.info("candidate %d/%d %s: validation %s %.4f (%.1f s)",
                    i + 1, len(results["params"]), grid_params, metric, score, seconds)
        rows.append({"candidate": i + 1, **{name: grid_params.get(name) for name in settings.grid},
                     f"validation_{metric}": score, "seconds": round(seconds, 2)})
    trials = pd.DataFrame(rows)
    best_params = {**settings.base,
                   **{name.removeprefix(f"{STEP}__"): value for name, value in grid.best_params_.items()}}
    logger.info("best candidate %d %s; refitted on training + validation", grid.best_index_ + 1, best_params)
    return SearchResult(model=grid.best_estimator_, best_params=best_params, trials=trials)
