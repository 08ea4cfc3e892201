"""Plots people look at after a training run.

Each function returns a PIL image (rendered with matplotlib's Agg backend),
which the ZenML dashboard shows as an artifact visualization and which is
logged to MLflow as-is.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from collabops.data.contract import DataContract
from collabops.training.metrics import metric_by
from collabops.training.tasks import Task


def _figure(rows: int = 1, height: float = 3.2, width: float = 10.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(rows, 1, figsize=(width, height * rows), squeeze=False)


def _to_image(fig: Any) -> Any:
    import matplotlib.pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    buffer.seek(0)
    image = Image.open(buffer)
    image.load()
    return image


def forecast_week(contract: DataContract, test: pd.DataFrame, pred: np.ndarray,
                  baseline_pred: np.ndarray, series: int = 4) -> Any:
    """Predicted vs actual over the last full week of the test period, for a few series of different segments.

    Without an entity column the data is one series: one panel.
    """
    frame = test.assign(_pred=pred, _baseline=baseline_pred)
    time = contract.time_column
    entity = contract.entity_column or "_series"
    segment = contract.segment_column or entity
    if contract.entity_column is None:
        frame = frame.assign(_series="all")
    end = frame[time].max()
    week = frame[frame[time] > end - pd.Timedelta(days=7)]
    chosen = week.drop_duplicates(segment)[entity].head(series).tolist()
    fig, axes = _figure(rows=max(len(chosen), 1), height=2.4)
    for ax, key in zip(axes[:, 0], chosen, strict=False):  # no rows: one empty panel
        shown = week[week[entity] == key].sort_values(time)
        ax.plot(shown[time], shown[contract.target], label="actual", color="black", linewidth=1.2)
        ax.plot(shown[time], shown["_pred"], label="model", color="tab:blue", linewidth=1.0)
        ax.plot(shown[time], shown["_baseline"], label="baseline", color="tab:orange",
                linewidth=0.8, linestyle="--")
        title = str(key) if segment == entity else f"{key} ({shown[segment].iloc[0]})"
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(contract.target, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    return _to_image(fig)


def error_by_hour(contract: DataContract, test: pd.DataFrame, pred: np.ndarray, baseline_pred: np.ndarray,
                  task: Task) -> Any:
    """The task's primary metric by hour of day of the time column, model next to baseline."""
    y = test[contract.target].to_numpy()
    hours = pd.to_datetime(test[contract.time_column]).dt.hour.to_numpy()
    model_err = metric_by(hours, y, pred, task.metric)
    base_err = metric_by(hours, y, baseline_pred, task.metric)
    order = sorted(model_err, key=int)
    x = np.array([int(h) for h in order])
    fig, axes = _figure()
    ax = axes[0, 0]
    ax.bar(x - 0.2, [model_err[h] for h in order], width=0.4, label="model", color="tab:blue")
    ax.bar(x + 0.2, [base_err[h] for h in order], width=0.4, label="baseline", color="tab:orange")
    ax.set_xticks(x)
    ax.set_xlabel("hour of day")
    ax.set_ylabel(task.primary_metric.upper())
    ax.set_title(f"Test {task.primary_metric.upper()} by hour of day")
    ax.legend()
    return _to_image(fig)


def feature_importance(importance: pd.Series, metric: str,
                       title: str = "Permutation importance on the test period") -> Any:
    """Horizontal bars, most important input column on top; ``metric`` names the score importance is measured in."""
    ordered = importance.sort_values()
    fig, axes = _figure(height=0.35 * len(ordered) + 1.2, width=8)
    ax = axes[0, 0]
    ax.barh(list(map(str, ordered.index)), ordered.to_numpy(), color="tab:green")
    ax.set_xlabel(f"loss in {metric.upper()} when the column is shuffled")
    ax.set_title(title)
    return _to_image(fig)


def search_trials(trials: pd.DataFrame, metric_column: str, params: Sequence[str]) -> Any:
    """Validation score of each hyperparameter candidate."""
    labels = [", ".join(f"{p}={row[p]}" for p in params) or "default" for _, row in trials.iterrows()]
    fig, axes = _figure(height=0.4 * len(trials) + 1.2, width=8)
    ax = axes[0, 0]
    ax.barh(labels, trials[metric_column].to_numpy(), color="tab:purple")
    ax.set_xlabel(metric_column)
    ax.set_title("Hyperparameter search")
    return _to_image(fig)
