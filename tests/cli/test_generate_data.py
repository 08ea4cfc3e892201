"""``run.py generate-data``: deterministic, never overwrites, refuses bad options before generating."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import assert_refused

SMALL = ["--months", "1", "--car-parks", "3"]


def test_the_same_seed_gives_the_same_data_in_csv_and_parquet(cli, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.csv"
    for out in (a, b):
        result = cli("generate-data", "--out", out, *SMALL, "--seed", "4")
        assert result.code == 0, result
        assert f"to {out}" in result.out
    frame_a, frame_b = pd.read_parquet(a), pd.read_csv(b)
    assert len(frame_a) > 2000  # a month of hours for three car parks, less the hours a sensor missed
    assert str(frame_a["timestamp"].dtype) == "datetime64[ns, Europe/Stockholm]"  # Parquet keeps the zone
    assert frame_b["timestamp"].iloc[0] == "2024-01-01 00:00:00+01:00"  # CSV writes the offset
    frame_b["timestamp"] = pd.to_datetime(frame_b["timestamp"], utc=True).dt.tz_convert("Europe/Stockholm")
    pd.testing.assert_frame_equal(frame_a[["timestamp", "car_park_id", "occupancy_rate"]],
                                  frame_b[["timestamp", "car_park_id", "occupancy_rate"]], check_dtype=False)


def test_another_seed_gives_other_data(cli, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert cli("generate-data", "--out", a, *SMALL, "--seed", "4").code == 0
    assert cli("generate-data", "--out", b, *SMALL, "--seed", "5").code == 0
    assert pd.read_parquet(a)["occupancy_rate"].tolist() != pd.read_parquet(b)["occupancy_rate"].tolist()


def test_drift_starts_later_by_default(cli, tmp_path):
    out = tmp_path / "drift.parquet"
    assert cli("generate-data", "--out", out, *SMALL, "--drift").code == 0
    assert pd.read_parquet(out)["timestamp"].min() == pd.Timestamp("2025-01-01", tz="Europe/Stockholm")


def test_an_existing_file_is_never_overwritten_without_force(cli, tmp_path):
    out = tmp_path / "a.csv"
    out.write_text("precious")
    refused = cli("generate-data", "--out", out, *SMALL)
    assert_refused(refused, f"{out}: already exists (use --force to overwrite)")
    assert out.read_text() == "precious"
    forced = cli("generate-data", "--out", out, *SMALL, "--force")
    assert forced.code == 0, forced
    assert len(pd.read_csv(out)) > 2000


@pytest.mark.parametrize("options, fragment", [
    (["--start", "yesterday"], "--start 'yesterday' is not a date (use YYYY-MM-DD)"),
    (["--months", "0"], "--months and --car-parks must be at least 1"),
    (["--car-parks", "-2"], "--months and --car-parks must be at least 1"),
    (["--start", "2261-06-01"], "--start 2261-06-01 with 12 month(s) goes beyond the years 1678-2261"),
    (["--start", "1600-01-01", "--months", "1"], "--start 1600-01-01 with 1 month(s) goes beyond the years"),
    (["--seed", "-5"], "--seed -5 is not a whole number from 0 to 4294967295"),
    (["--seed", str(2 ** 40)], f"--seed {2 ** 40} is not a whole number from 0"),
    (["--car-parks", "100000000"], "--car-parks 100,000,000 with 12 month(s) is up to"),
])
def test_bad_options_are_refused_and_nothing_is_written(cli, tmp_path, options, fragment):
    out = tmp_path / "data.csv"
    assert_refused(cli("generate-data", "--out", out, *options), fragment)
    assert list(tmp_path.iterdir()) == []


def test_an_unsupported_output_type_is_refused_and_nothing_is_written(cli, tmp_path):
    out = tmp_path / "data.xlsx"
    assert_refused(cli("generate-data", "--out", out, *SMALL), f"{out}: unsupported file type '.xlsx'")
    assert list(tmp_path.iterdir()) == []


def test_the_last_year_a_timestamp_may_have_is_generated_to_its_end(cli, tmp_path):
    out = tmp_path / "late.parquet"
    result = cli("generate-data", "--out", out, "--car-parks", "1", "--start", "2261-01-01")
    assert result.code == 0, result
    assert pd.read_parquet(out)["timestamp"].max() == pd.Timestamp("2261-12-31 23:00", tz="Europe/Stockholm")


def test_only_hours_that_exist_on_the_clock_are_written_both_autumn_two_oclocks_included(cli, tmp_path):
    out = tmp_path / "spring-to-autumn.parquet"
    result = cli("generate-data", "--out", out, "--car-parks", "8", "--start", "2024-03-01", "--months", "8")
    assert result.code == 0, result
    times = pd.Series(pd.read_parquet(out)["timestamp"].unique())
    every = pd.date_range("2024-03-01", "2024-11-01", freq="h", inclusive="left", tz="Europe/Stockholm")
    assert len(every) == 245 * 24  # 245 days; the spring night is an hour short, the autumn night an hour long
    assert times.sort_values().tolist() == every.tolist()
    wall = times.dt.tz_localize(None)
    assert not ((wall >= "2024-03-31 02:00") & (wall < "2024-03-31 03:00")).any()
    repeated = times[(wall >= "2024-10-27 02:00") & (wall < "2024-10-27 03:00")]
    assert sorted(repeated.map(lambda t: t.isoformat())) == ["2024-10-27T02:00:00+01:00", "2024-10-27T02:00:00+02:00"]
