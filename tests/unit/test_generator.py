"""The example data: deterministic, realistic structure, fast enough."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from collabops.data.generator import KINDS, GeneratorSettings, generate


@pytest.fixture(scope="module")
def year():
    started = time.perf_counter()
    frame = generate()
    return frame, time.perf_counter() - started


def test_same_seed_same_data_other_seed_other_data():
    a = generate(GeneratorSettings(months=1, car_parks=3, seed=11))
    b = generate(GeneratorSettings(months=1, car_parks=3, seed=11))
    c = generate(GeneratorSettings(months=1, car_parks=3, seed=12))
    pd.testing.assert_frame_equal(a, b)
    assert not a["occupancy_rate"].equals(c["occupancy_rate"])


def test_default_is_a_year_of_twenty_car_parks_of_every_kind(year):
    frame, seconds = year
    assert frame["car_park_id"].nunique() == 20
    assert set(frame["car_park_kind"]) == set(KINDS)
    assert frame["timestamp"].min() == pd.Timestamp("2024-01-01", tz="Europe/Stockholm")
    assert frame["timestamp"].max() == pd.Timestamp("2024-12-31 23:00", tz="Europe/Stockholm")
    # About 0.5% of hours are lost sensor readings.
    assert 0.99 * 20 * 8784 < len(frame) < 20 * 8784
    assert seconds < 10, "a year for 20 car parks must generate in seconds"


def test_target_range_and_missing_weather(year):
    frame, _ = year
    assert frame["occupancy_rate"].between(0, 1).all()
    assert 0.005 < frame["temperature_c"].isna().mean() < 0.02
    assert frame["occupancy_rate"].notna().all()


def test_daily_and_weekly_seasonality(year):
    frame, _ = year
    office = frame[(frame["car_park_kind"] == "city_centre") & ~frame["is_holiday"]]
    by_hour = office.groupby(office["timestamp"].dt.hour)["occupancy_rate"].mean()
    assert by_hour.loc[12:14].mean() > 2 * by_hour.loc[1:4].mean()
    weekday = office[office["timestamp"].dt.dayofweek < 5]["occupancy_rate"].mean()
    sunday = office[office["timestamp"].dt.dayofweek == 6]["occupancy_rate"].mean()
    assert weekday > 1.3 * sunday


def test_holidays_events_and_personal_columns(year):
    frame, _ = year
    holidays = set(frame.loc[frame["is_holiday"], "timestamp"].dt.date.astype(str))
    assert {"2024-12-25", "2024-06-21", "2024-03-29", "2024-05-09"} <= holidays  # Midsummer Eve, Good Friday, Ascension
    arena = frame[frame["car_park_kind"] == "event_arena"]
    with_event = arena[arena["event_nearby"]]["occupancy_rate"].mean()
    assert with_event > 3 * arena[~arena["event_nearby"]]["occupancy_rate"].mean()
    plates = frame["last_entry_plate"].dropna()
    assert plates.str.fullmatch(r"[A-Z]{3} \d{3}").all()
    assert frame["last_entry_customer_id"].dropna().str.fullmatch(r"CU-\d{6}").all()


def test_drift_really_changes_the_distribution():
    normal = generate(GeneratorSettings(months=2, car_parks=8, start="2025-01-01"))
    drifted = generate(GeneratorSettings(months=2, car_parks=8, drift=True))
    assert drifted["timestamp"].min() == pd.Timestamp("2025-01-01", tz="Europe/Stockholm")
    assert drifted["price_per_hour"].mean() > 1.3 * normal["price_per_hour"].mean()
    commuter = ["city_centre", "train_station"]
    assert (drifted[drifted["car_park_kind"].isin(commuter)]["occupancy_rate"].mean()
            < 0.85 * normal[normal["car_park_kind"].isin(commuter)]["occupancy_rate"].mean())
    assert drifted["temperature_c"].mean() > normal["temperature_c"].mean() + 2


def test_rejects_empty_settings():
    with pytest.raises(ValueError, match="months"):
        generate(GeneratorSettings(months=0))
    assert np.isfinite(generate(GeneratorSettings(months=1, car_parks=1))["occupancy_rate"]).all()
