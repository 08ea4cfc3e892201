"""Issue 9, section 2: one clock. The contract names the time zone of its times; every door reads them on it.

Naive times are wall time in the zone, times with an offset are converted
into it, the repeated autumn hour is two instants (by order of appearance per
car park), a wall time in the spring gap is refused naming the row, and only
ISO 8601 is read. Calendar features are local wall time; files collabops
writes keep the zone (CSV with the offset).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from collabops.data.contract import contract_from_dict, load_contract, time_zone_difference
from collabops.data.dataset import read_table, write_table
from collabops.data.profile import clock, profile
from collabops.data.rules import RecordError, RecordValidator, RepeatedHours
from collabops.data.split import SplitSettings, hold_out_latest, time_split
from collabops.errors import DataError
from collabops.production.compiled import frame_from_rows
from collabops.production.scoring import score_file
from collabops.production.serving import PredictionService, create_app
from collabops.settings import ServingSettings
from collabops.training.features import CalendarFeatures, build_model
from collabops.training.tasks import get_task
from tests.conftest import CONTRACT as CONTRACT_PATH
from tests.conftest import example_data

CONTRACT = load_contract(CONTRACT_PATH)
FEATURES = CONTRACT.feature_columns
ZONE = "Europe/Stockholm"
AWARE = f"datetime64[ns, {ZONE}]"


class _Hour:
    """A model that predicts the local hour it is given, read as the compiled path and the pipeline read it."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["timestamp"].dt.hour.to_numpy(dtype=float)


@pytest.fixture(scope="module")
def autumn() -> pd.DataFrame:
    """Three car parks from 2024-10-26 to 2024-10-28 as the generator writes them: both 02:00 hours of the 27th."""
    return example_data(months=1, car_parks=3, seed=2, start="2024-10-01")


def _wall_csv(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as a CSV of naive wall-clock times (no offsets), as a local system exports it."""
    frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- the contract

def test_the_contract_names_its_clock_and_the_digest_covers_it():
    assert CONTRACT.time_zone == ZONE and CONTRACT.rules.rule("timestamp").dtype == AWARE
    raw = {k: v for k, v in CONTRACT.raw.items() if k != "time_zone"}
    utc, explicit = contract_from_dict(copy.deepcopy(raw)), contract_from_dict({**raw, "time_zone": "UTC"})
    assert utc.time_zone == "UTC" and utc.digest() == explicit.digest() != CONTRACT.digest()
    assert time_zone_difference(CONTRACT, utc) == "time_zone is UTC there, Europe/Stockholm here"
    assert time_zone_difference(CONTRACT, CONTRACT) is None


# ----------------------------------------------------------------------------- aware values

@pytest.mark.parametrize("text", ["2024-05-01T08:00:00+02:00", "2024-05-01T06:00:00Z", "2024-05-01 07:00+0100",
                                  "2024-05-01T08:00:00"])
def test_an_aware_value_is_the_instant_it_names_and_its_local_hour_is_kept(text):
    value = RecordValidator(CONTRACT, ["timestamp"]).rows([{"timestamp": text}])[0][0]
    assert value == pd.Timestamp("2024-05-01 08:00", tz=ZONE) and value.hour == 8
    frame = CONTRACT.validate(pd.DataFrame({"timestamp": [text]}), "frame", columns=["timestamp"])
    assert str(frame["timestamp"].dtype) == AWARE and frame["timestamp"].dt.hour.tolist() == [8]


def test_an_aware_parquet_column_is_converted_into_the_zone(autumn, tmp_path):
    in_utc = autumn.assign(timestamp=autumn["timestamp"].dt.tz_convert("UTC"))
    in_utc.to_parquet(tmp_path / "utc.parquet", index=False)
    read = CONTRACT.validate(read_table(tmp_path / "utc.parquet", CONTRACT), "utc.parquet")
    assert str(read["timestamp"].dtype) == AWARE
    pd.testing.assert_frame_equal(read, CONTRACT.validate(autumn, "generated"))


@pytest.mark.parametrize("name", ["aware.parquet", "aware.csv"])
def test_files_collabops_writes_keep_the_zone_and_read_back_as_the_same_instants(autumn, tmp_path, name):
    written = write_table(CONTRACT.validate(autumn, "generated"), tmp_path / name)
    if name.endswith(".csv"):
        first = written.read_text().splitlines()[1]
        assert first.startswith("2024-10-01 00:00:00+02:00,")
    read = CONTRACT.validate(read_table(written, CONTRACT), name)
    pd.testing.assert_frame_equal(read, CONTRACT.validate(autumn, "generated"))


def test_over_http_an_offset_names_the_same_hour_as_local_wall_time(autumn, tmp_path):
    model = build_model(CONTRACT, get_task("regression").make_estimator({"max_iter": 10, "random_state": 0}))
    model.fit(autumn[FEATURES], autumn[CONTRACT.target])
    service = PredictionService(model, CONTRACT, "1", "b", {}, serving=ServingSettings(workers=1),
                                log_dir=tmp_path, reference=autumn.head(200))
    assert service.inference_path == "compiled"
    base = json.loads(autumn[FEATURES].iloc[[50]].to_json(orient="records", date_format="iso"))[0]
    spellings = ["2024-05-01T08:00:00", "2024-05-01T08:00:00+02:00", "2024-05-01T06:00:00Z"]
    with TestClient(create_app(service)) as client:
        answers = [client.post("/predict", json={"records": [dict(base, timestamp=t)]}).json() for t in spellings]
        shifted = client.post("/predict", json={"records": [dict(base, timestamp="2024-05-01T06:00:00")]}).json()
    assert len({a["predictions"][0] for a in answers}) == 1, answers
    local = pd.DataFrame([dict(base, timestamp=pd.Timestamp("2024-05-01 08:00", tz=ZONE))])[FEATURES]
    assert answers[0]["predictions"][0] == pytest.approx(model.predict(local)[0], abs=1e-9)
    assert shifted["predictions"][0] == pytest.approx(model.predict(local.assign(
        timestamp=pd.Timestamp("2024-05-01 06:00", tz=ZONE)))[0], abs=1e-9)
    logged = pd.concat(pd.read_parquet(f) for f in sorted(tmp_path.glob("inference-*.parquet")))  # flushed at exit
    assert str(logged["timestamp"].dtype) == AWARE  # the inference log keeps the zone
    assert sorted(logged["timestamp"].dt.strftime("%H:%M%z")) == ["06:00+0200"] + ["08:00+0200"] * 3


# ----------------------------------------------------------------------------- the autumn night

def test_real_wall_clock_data_of_the_night_clocks_go_back_is_accepted(autumn, tmp_path):
    path = _wall_csv(autumn, tmp_path / "wall.csv")
    assert (pd.read_csv(path)["timestamp"] == "2024-10-27 02:00:00").sum() >= 4  # twice per car park
    read = CONTRACT.validate(read_table(path, CONTRACT), "wall.csv")
    pd.testing.assert_frame_equal(read, CONTRACT.validate(autumn, "generated"))
    two = read[read["timestamp"].dt.tz_localize(None) == pd.Timestamp("2024-10-27 02:00")]
    first = two.groupby("car_park_id")["timestamp"].first()  # each car park's first 02:00 is summer time
    assert len(two) >= 4 and (first.map(lambda t: t.isoformat()) == "2024-10-27T02:00:00+02:00").all()
    assert sorted({t.isoformat() for t in two["timestamp"]}) == ["2024-10-27T02:00:00+01:00",
                                                                 "2024-10-27T02:00:00+02:00"]


def test_a_third_row_of_a_repeated_wall_time_is_a_duplicate_key_named_by_row(tmp_path):
    rows = pd.DataFrame({"timestamp": ["2024-10-27 01:00", "2024-10-27 02:00", "2024-10-27 02:00",
                                       "2024-10-27 02:00", "2024-10-27 02:00"],
                         "car_park_id": ["A", "A", "B", "A", "A"]})
    with pytest.raises(DataError) as caught:
        CONTRACT.validate(rows, "night.csv", columns=["timestamp", "car_park_id"])
    assert "duplicate rows for (car_park_id, timestamp): ('A', 2024-10-27 02:00:00+01:00) (row 5)" in str(caught.value)
    records = rows.head(4).to_dict(orient="records")
    got = RecordValidator(CONTRACT, ["timestamp", "car_park_id"]).rows(records)
    assert [t.isoformat() for t, _ in got] == ["2024-10-27T01:00:00+02:00", "2024-10-27T02:00:00+02:00",
                                               "2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00"]
    with pytest.raises(RecordError, match=r"^record 4: column 'car_park_id': duplicate \(car_park_id, timestamp\) "
                                          r"key: record 3 has the same"):
        RecordValidator(CONTRACT, ["timestamp", "car_park_id"]).rows(rows.to_dict(orient="records"))


def test_a_single_record_in_the_repeated_hour_is_the_earlier_instant():
    value = RecordValidator(CONTRACT, ["timestamp"]).rows([{"timestamp": "2024-10-27T02:30:00"}])[0][0]
    assert value.isoformat() == "2024-10-27T02:30:00+02:00"


def test_an_offset_in_the_repeated_hour_is_exact_and_does_not_count_in_the_order():
    records = [{"timestamp": "2024-10-27T02:00:00+01:00", "car_park_id": "A"},
               {"timestamp": "2024-10-27T02:00:00", "car_park_id": "A"}]
    got = RecordValidator(CONTRACT, ["timestamp", "car_park_id"]).rows(records)
    assert [t.isoformat() for t, _ in got] == ["2024-10-27T02:00:00+01:00", "2024-10-27T02:00:00+02:00"]


@pytest.mark.parametrize("chunk_rows", [1, 7, 100_000])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_batch_scoring_keeps_the_order_across_chunks(autumn, tmp_path, chunk_rows, suffix):
    night = autumn[(autumn["timestamp"] >= pd.Timestamp("2024-10-26 20:00", tz=ZONE))
                   & (autumn["timestamp"] < pd.Timestamp("2024-10-27 06:00", tz=ZONE))].reset_index(drop=True)
    wall = night.assign(timestamp=night["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    source = tmp_path / f"night{suffix}"
    wall.to_csv(source, index=False) if suffix == ".csv" else wall.to_parquet(source, index=False)
    out = tmp_path / "scored.parquet"
    assert score_file(_Hour(), CONTRACT, source, out, "1", "b", chunk_rows=chunk_rows, threads=0) == len(night)
    scored = pd.read_parquet(out)
    assert str(scored["timestamp"].dtype) == AWARE
    assert scored["timestamp"].tolist() == night["timestamp"].tolist()
    assert scored["prediction"].tolist() == night["timestamp"].dt.hour.astype(float).tolist()  # local hours


def test_scoring_output_keeps_the_zone_csv_with_the_offset(autumn, tmp_path):
    source = _wall_csv(autumn, tmp_path / "wall.csv")
    score_file(_Hour(), CONTRACT, source, tmp_path / "scored.csv", "1", "b", chunk_rows=500, threads=0)
    lines = (tmp_path / "scored.csv").read_text().splitlines()
    assert lines[0].startswith("timestamp,car_park_id,car_park_kind,prediction")
    stamps = [line.split(",")[0] for line in lines[1:]]
    assert stamps[0] == "2024-10-01 00:00:00+02:00" and "2024-10-27 02:00:00+01:00" in stamps
    back = pd.to_datetime(pd.Series(stamps), utc=True).dt.tz_convert(ZONE)
    assert back.tolist() == autumn["timestamp"].tolist()


def test_a_repeat_across_chunks_is_named_with_both_rows(autumn, tmp_path):
    night = autumn[autumn["car_park_id"] == "CP001"].reset_index(drop=True)
    wall = night.assign(timestamp=night["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    second = wall.index[wall["timestamp"] == "2024-10-27 02:00:00"][1]
    wall.loc[second + 5, "timestamp"] = "2024-10-27 02:00:00"  # a third 02:00, five rows after the second
    wall.to_csv(tmp_path / "three.csv", index=False)
    with pytest.raises(DataError) as caught:
        score_file(_Hour(), CONTRACT, tmp_path / "three.csv", tmp_path / "out.csv", "1", "b", chunk_rows=3, threads=0)
    assert (f"('CP001', 2024-10-27 02:00:00+01:00) (row {second + 6}, the same key as row {second + 1})"
            in str(caught.value))
    assert not (tmp_path / "out.csv").exists()


def test_the_order_memory_counts_what_it_is_given():
    clock_ = RepeatedHours()
    keys = [("A", 1), ("B", 1), ("A", 1)]
    assert clock_.occurrences(keys).tolist() == [0, 0, 1] and clock_.counts == {}
    clock_.add(keys)
    assert clock_.occurrences([("A", 1), ("B", 1)]).tolist() == [2, 1]


# ----------------------------------------------------------------------------- the spring gap

def test_a_wall_time_in_the_spring_gap_is_refused_naming_the_row_at_every_door(tmp_path):
    spring = example_data(months=1, car_parks=2, seed=4, start="2024-03-01")
    wall = spring.assign(timestamp=spring["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    wall.loc[7, "timestamp"] = "2024-03-31 02:30:00"
    wall.to_csv(tmp_path / "gap.csv", index=False)
    expected = ("column 'timestamp': 1 wall time(s) that do not exist in Europe/Stockholm (the clocks jump over "
                "them): '2024-03-31 02:30:00' (row 8)")
    with pytest.raises(DataError, match=None) as caught:
        CONTRACT.validate(read_table(tmp_path / "gap.csv", CONTRACT), "gap.csv")
    assert expected in str(caught.value)
    with pytest.raises(DataError) as caught:
        score_file(_Hour(), CONTRACT, tmp_path / "gap.csv", tmp_path / "o.csv", "1", "b", chunk_rows=5, threads=0)
    assert expected in str(caught.value)
    with pytest.raises(RecordError, match=r"^record 0: column 'timestamp': '2024-03-31T02:30:00' does not exist in "
                                          r"Europe/Stockholm"):
        RecordValidator(CONTRACT, ["timestamp"]).rows([{"timestamp": "2024-03-31T02:30:00"}])
    spring_forward = RecordValidator(CONTRACT, ["timestamp"]).rows([{"timestamp": "2024-03-31T02:30:00+01:00"}])
    assert spring_forward[0][0].isoformat() == "2024-03-31T03:30:00+02:00"  # an offset is exact: it exists


# ----------------------------------------------------------------------------- only ISO 8601

@pytest.mark.parametrize("value", [1714543200, 1714543200000000000, "1714543200", "01/05/2024 08:00",
                                   "2024-05-01T08:00:00 CEST", "May 1 2024"])
def test_no_epoch_numbers_and_no_day_month_guessing(value):
    with pytest.raises(RecordError, match=r"^record 0: column 'timestamp': .* is not of type datetime"):
        RecordValidator(CONTRACT, ["timestamp"]).rows([{"timestamp": value}])
    with pytest.raises(DataError, match=r"column 'timestamp': values are not of type datetime"):
        CONTRACT.validate(pd.DataFrame({"timestamp": [value]}, dtype=object), "frame", columns=["timestamp"])


# ----------------------------------------------------------------------------- features, split, profile

def test_calendar_features_read_local_wall_time(autumn):
    moments = pd.Series(pd.to_datetime(["2024-10-27T00:30:00Z", "2024-10-27T01:30:00Z", "2024-12-31T23:30:00Z"],
                                       utc=True)).dt.tz_convert(ZONE)
    features = CalendarFeatures("t").fit(pd.DataFrame({"t": moments})).transform(pd.DataFrame({"t": moments}))
    assert features["hour"].tolist() == [2, 2, 0] and features["day_of_year"].tolist() == [301, 301, 1]
    assert features["month"].tolist() == [10, 10, 1] and features["day_of_week"].tolist() == [6, 6, 2]
    rows = RecordValidator(CONTRACT, ["timestamp"]).rows([{"timestamp": t} for t in
                                                          ["2024-10-27T00:30:00Z", "2024-12-31T23:30:00Z"]])
    assert [(t.hour, t.month, t.timetuple().tm_yday) for (t,) in rows] == [(2, 10, 301), (0, 1, 1)]


def test_rows_of_the_compiled_path_become_the_validated_frame(autumn):
    records = json.loads(autumn[FEATURES].head(40).to_json(orient="records", date_format="iso"))
    rows = RecordValidator(CONTRACT, FEATURES).rows(records)
    pd.testing.assert_frame_equal(frame_from_rows(rows, CONTRACT, FEATURES),
                                  CONTRACT.validate(autumn.head(40), "sample", columns=FEATURES))
    assert str(frame_from_rows([], CONTRACT, FEATURES)["timestamp"].dtype) == AWARE


def test_split_and_holdout_cut_at_instants_and_keep_both_autumn_hours_in_order(autumn):
    data = CONTRACT.validate(autumn, "generated")
    parts = time_split(data, "timestamp", SplitSettings(0.2, 0.2, 10), "generated")
    assert parts.train["timestamp"].max() < parts.validation["timestamp"].min()
    assert parts.validation["timestamp"].max() < parts.test["timestamp"].min()
    assert sum(len(p) for p in (parts.train, parts.validation, parts.test)) == len(data)
    cut = pd.Timestamp("2024-10-27 02:00:00+01:00").tz_convert(ZONE)  # the second 02:00
    hours = sorted(data["timestamp"].unique())
    fraction = (len(hours) - hours.index(cut)) / len(hours)
    rest, holdout = hold_out_latest(data, "timestamp", fraction)
    assert holdout["timestamp"].min() == cut and rest["timestamp"].max() == cut - pd.Timedelta(hours=1)
    assert str(rest["timestamp"].max()) == "2024-10-27 02:00:00+02:00"  # the first 02:00 stays with the rest


def test_the_profile_and_the_bundle_manifest_say_the_zone(autumn):
    summary = profile(CONTRACT.validate(autumn, "generated"), CONTRACT)
    assert summary["time_zone"] == ZONE and clock(CONTRACT) == {"time_zone": ZONE}
    times = summary["columns"]["timestamp"]
    assert (times["min"], times["max"]) == ("2024-10-01T00:00:00+02:00", "2024-10-31T23:00:00+01:00")
    json.dumps(summary)  # plain JSON, as the bundle writes it


def test_a_contract_without_a_zone_reads_naive_times_as_they_always_were():
    raw = {k: v for k, v in copy.deepcopy(CONTRACT.raw).items() if k != "time_zone"}
    utc = contract_from_dict(raw)
    frame = pd.DataFrame({"timestamp": ["2024-10-27 02:00", "2024-03-31 02:30"]})
    got = utc.validate(frame, "old", columns=["timestamp"])["timestamp"]
    assert got.dt.tz_localize(None).tolist() == [pd.Timestamp("2024-10-27 02:00"), pd.Timestamp("2024-03-31 02:30")]
    assert str(got.dtype) == "datetime64[ns, UTC]"
