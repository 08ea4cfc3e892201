"""A contract without an entity or segment column: one time series, no invented id column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from collabops.data.contract import contract_from_dict
from collabops.data.split import SplitSettings, time_split
from collabops.errors import DataError
from collabops.training import plots
from collabops.training.evaluation import evaluate
from collabops.training.features import build_model
from collabops.training.tasks import get_task

CONTRACT = contract_from_dict({
    "name": "city-energy", "version": 1, "time_column": "hour", "target": "load_mw",
    "columns": [
        {"name": "hour", "type": "datetime"},
        {"name": "temperature_c", "type": "float", "min": -40, "max": 45},
        {"name": "is_holiday", "type": "bool"},
        {"name": "load_mw", "type": "float", "min": 0},
    ],
}, source="single-series contract")


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    hours = pd.date_range("2024-01-01", periods=24 * 7 * 10, freq="h")
    temperature = 10 + 8 * np.sin(np.arange(len(hours)) / 24 * 2 * np.pi) + rng.normal(0, 1, len(hours))
    load = 50 + 20 * np.sin((hours.hour.to_numpy() - 6) / 24 * 2 * np.pi) + 0.5 * temperature
    return pd.DataFrame({"hour": hours, "temperature_c": temperature, "is_holiday": hours.dayofweek == 6,
                         "load_mw": load + rng.normal(0, 1, len(hours))})


def test_the_contract_needs_no_entity_or_segment_column():
    assert CONTRACT.entity_column is None and CONTRACT.segment_column is None
    assert CONTRACT.key_columns == ["hour"]
    assert CONTRACT.feature_columns == ["hour", "temperature_c", "is_holiday"]


def test_a_repeated_time_is_a_duplicate_key(series):
    repeated = pd.concat([series.head(30), series.iloc[[5]]], ignore_index=True)
    with pytest.raises(DataError, match=r"duplicate rows for \(hour\).*\(row 31\)"):
        CONTRACT.validate(repeated, source="load.csv")


def test_train_evaluate_and_plot_one_series(series):
    data = CONTRACT.validate(series, source="load.csv")
    parts = time_split(data, CONTRACT.time_column, SplitSettings(), source="load.csv")
    task = get_task("regression")
    features, target = CONTRACT.feature_columns, CONTRACT.target
    baseline = task.make_baseline(CONTRACT).fit(parts.train[features], parts.train[target])
    model = build_model(CONTRACT, task.make_estimator({"max_iter": 50, "random_state": 0}))
    model.fit(parts.train[features], parts.train[target])
    scored = evaluate(task, CONTRACT, model, parts.test)
    base = evaluate(task, CONTRACT, baseline, parts.test)
    assert scored["by_segment"] == {} and set(scored["by_hour_band"]) == {"night", "morning", "midday", "evening",
                                                                         "late"}
    # The daily cycle is learnable: both beat the series' own spread, the model beats the weekly profile.
    assert scored["overall"]["mae"] < base["overall"]["mae"] < parts.test[target].std()
    image = plots.forecast_week(CONTRACT, parts.test, model.predict(parts.test[features]),
                                baseline.predict(parts.test[features]))
    assert image.size[0] > 100 and image.size[1] > 100
