"""Time-ordered split: no leakage, no tiny parts."""

from __future__ import annotations

import pytest

from collabops.data.generator import GeneratorSettings, generate
from collabops.data.split import SplitSettings, time_split
from collabops.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def frame():
    return generate(GeneratorSettings(months=2, car_parks=5, seed=2)).sample(frac=1.0, random_state=0)


def test_parts_are_consecutive_periods_without_leakage(frame):
    parts = time_split(frame, "timestamp", SplitSettings(), source="x")
    assert parts.train["timestamp"].max() < parts.validation["timestamp"].min()
    assert parts.validation["timestamp"].max() < parts.test["timestamp"].min()
    assert len(parts.train) + len(parts.validation) + len(parts.test) == len(frame)
    # All car parks of one hour are in the same part.
    for part in (parts.train, parts.validation, parts.test):
        assert part["timestamp"].is_monotonic_increasing


def test_fractions_are_shares_of_the_time_range(frame):
    parts = time_split(frame, "timestamp", SplitSettings(validation_fraction=0.2, test_fraction=0.1), "x")
    assert len(parts.validation) / len(frame) == pytest.approx(0.2, abs=0.02)
    assert len(parts.test) / len(frame) == pytest.approx(0.1, abs=0.02)


def test_too_few_rows_names_what_the_split_needs(frame):
    with pytest.raises(DataError, match=r"small.csv: 50 rows are fewer than the time split needs.*at least 1334 rows"):
        time_split(frame.head(50), "timestamp", SplitSettings(), source="small.csv")


@pytest.mark.parametrize("raw, message", [
    ({"test_fraction": 1.5}, "split.test_fraction must be between 0 and 1"),
    ({"validation_fraction": 0.5, "test_fraction": 0.45}, "at least 10% for training"),
    ({"shuffle": True}, "unknown setting"),
])
def test_bad_split_settings(raw, message):
    with pytest.raises(ConfigError, match=message):
        SplitSettings.from_dict(raw)
