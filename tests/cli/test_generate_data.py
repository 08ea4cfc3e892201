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
    frame_a, frame_b = pd.read_parquet(a), pd.read_csv(b, parse_dates=["timestamp"])
    assert len(frame_a) > 2000  # a month of hours for three car parks, less the hours a sensor missed
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
    assert pd.read_parquet(out)["timestamp"].min() == pd.Timestamp("2025-01-01")


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
])
def test_bad_options_are_refused_and_nothing_is_written(cli, tmp_path, options, fragment):
    out = tmp_path / "data.csv"
    assert_refused(cli("generate-data", "--out", out, *options), fragment)
    assert list(tmp_path.iterdir()) == []


def test_an_unsupported_output_type_is_refused_and_nothing_is_written(cli, tmp_path):
    out = tmp_path / "data.xlsx"
    assert_refused(cli("generate-data", "--out", out, *SMALL), f"{out}: unsupported file type '.xlsx'")
    assert list(tmp_path.iterdir()) == []
