"""Batch scoring refuses a repeated (entity, time) key anywhere in the file, not only within one chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collabops.data.contract import contract_from_dict, load_contract
from collabops.data.generator import GeneratorSettings, generate
from collabops.errors import DataError
from collabops.production import scoring
from collabops.production.scoring import score_file

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = load_contract(ROOT / "configs" / "contract.yaml")
ONE_SERIES = contract_from_dict({
    "name": "city-energy", "version": 1, "time_column": "hour", "target": "load_mw",
    "columns": [
        {"name": "hour", "type": "datetime"},
        {"name": "temperature_c", "type": "float", "min": -40, "max": 45},
        {"name": "load_mw", "type": "float", "min": 0},
    ],
}, source="single-series contract")


class _Zero:
    """A model that predicts 0 for every row: these tests are about the keys, not the model."""

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(features))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(GeneratorSettings(months=1, car_parks=4, seed=5)).drop(columns=[CONTRACT.target])  # 2,958 rows


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _refusal(contract, source: Path, out: Path, **options) -> str:
    with pytest.raises(DataError) as caught:
        score_file(_Zero(), contract, source, out, "7", "b-1", **options)
    assert not out.exists() and not list(out.parent.glob(".*partial"))
    return str(caught.value)


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_key_repeated_in_another_chunk_is_refused_naming_both_rows(tmp_path, frame, suffix, threads):
    bad = frame.copy()
    bad.loc[2600, ["car_park_id", "timestamp"]] = bad.loc[4, ["car_park_id", "timestamp"]].to_numpy()
    source = _write(bad, tmp_path / f"dup{suffix}")
    message = _refusal(CONTRACT, source, tmp_path / "out.parquet", chunk_rows=300, predict_rows=120,
                       threads=threads)
    car_park, moment = bad.loc[4, "car_park_id"], bad.loc[4, "timestamp"]
    assert message == (f"{source}: 1 problem(s) against the data contract 'parking-occupancy':\n"
                       f"  - duplicate rows for (car_park_id, timestamp): ('{car_park}', {moment}) "
                       "(row 2601, the same key as row 5)")


def test_keys_are_compared_as_values_whatever_the_spelling(tmp_path, frame):
    """In a CSV, 2024-01-01T05:00 and 2024-01-01 05:00:00 are the same time, so the same key."""
    bad = frame.copy()
    bad["timestamp"] = bad["timestamp"].astype(str)
    bad.loc[2000, ["car_park_id", "timestamp"]] = [bad.loc[10, "car_park_id"],
                                                   bad.loc[10, "timestamp"].replace(" ", "T")[:16]]
    source = _write(bad, tmp_path / "spelled.csv")
    message = _refusal(CONTRACT, source, tmp_path / "out.csv", chunk_rows=500)
    assert "(row 2001, the same key as row 11)" in message


def test_every_repeat_of_a_chunk_is_counted_and_the_first_shown(tmp_path, frame):
    n = len(frame)
    bad = pd.concat([frame, frame.iloc[100:110]], ignore_index=True)  # rows n+1 to n+10 repeat rows 101-110
    source = _write(bad, tmp_path / "ten.parquet")
    message = _refusal(CONTRACT, source, tmp_path / "out.parquet", chunk_rows=1000)
    assert f"(row {n + 1}, the same key as row 101), " in message
    assert f"(row {n + 3}, the same key as row 103), ... (10 repeated keys in rows 2001-{n + 10})" in message


def test_a_repeat_within_one_chunk_is_still_the_contracts_message(tmp_path, frame):
    bad = frame.copy()
    bad.loc[2346, ["timestamp", "car_park_id"]] = bad.loc[2345, ["timestamp", "car_park_id"]].to_numpy()
    message = _refusal(CONTRACT, _write(bad, tmp_path / "dup.parquet"), tmp_path / "out.csv", chunk_rows=300)
    assert "duplicate rows for (car_park_id, timestamp)" in message and "(row 2347)" in message


def test_without_an_entity_column_the_time_alone_is_the_key(tmp_path):
    hours = pd.date_range("2024-01-01", periods=500, freq="h")
    data = pd.DataFrame({"hour": hours, "temperature_c": np.linspace(-5, 20, len(hours))})
    data.loc[450, "hour"] = hours[7]
    source = _write(data, tmp_path / "series.parquet")
    message = _refusal(ONE_SERIES, source, tmp_path / "out.parquet", chunk_rows=100)
    moment = hours[7].tz_localize("UTC")  # a contract without time_zone: naive times are UTC wall time
    assert message.endswith(f"duplicate rows for (hour): ({moment}) (row 451, the same key as row 8)")
    unique = _write(data.assign(hour=hours), tmp_path / "unique.parquet")
    assert score_file(_Zero(), ONE_SERIES, unique, tmp_path / "ok.parquet", "7", "b-1", chunk_rows=100) == 500


def test_unique_keys_across_many_chunks_pass_and_equal_hashes_of_different_keys_pass(tmp_path, frame, monkeypatch):
    source = _write(frame, tmp_path / "in.parquet")
    assert score_file(_Zero(), CONTRACT, source, tmp_path / "a.parquet", "7", "b-1", chunk_rows=97) == len(frame)
    # Every key hashed alike: each chunk's keys are looked up in the file again, and none is really repeated.
    monkeypatch.setattr(scoring, "_key_hashes", lambda keys: np.zeros(len(keys), dtype=np.uint64))
    assert score_file(_Zero(), CONTRACT, source, tmp_path / "b.parquet", "7", "b-1", chunk_rows=1000) == len(frame)
