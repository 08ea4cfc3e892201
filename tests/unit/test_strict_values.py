"""Issue 9, section 1: strict values at every door, one example of the issue per test.

Each example goes through the doors that carry it: the HTTP service
(in-process, Starlette's TestClient over the app of a small model), a data
file read as training reads it (``read_table`` with the contract, then
``DataContract.validate``), batch scoring (``score_file``) and the commands
(``run.py train``/``export-data``/``generate-data`` called in-process, refused
before ZenML). A refusal names the field (record) or the column and row (file),
with HTTP 422 or exit 1.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from collabops.data.contract import contract_from_dict, load_contract
from collabops.data.dataset import read_table
from collabops.data.rules import RecordError, RecordValidator
from collabops.errors import ConfigError, DataError
from collabops.exchange.pseudonymise import pseudonymise
from collabops.production.compiled import load_compiled
from collabops.production.scoring import score_file
from collabops.production.serving import PredictionService, create_app
from collabops.settings import ServingSettings
from collabops.training.features import build_model
from collabops.training.tasks import get_task
from tests.conftest import CONTRACT as CONTRACT_PATH
from tests.conftest import assert_refused, example_data, write_project

CONTRACT = load_contract(CONTRACT_PATH)
FEATURES = CONTRACT.feature_columns
LIMITS = ServingSettings(workers=1, max_body_bytes=200_000, max_records=500)


class _Zero:
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(frame))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return example_data(months=1, car_parks=3, seed=11)


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame) -> Any:
    fitted = build_model(CONTRACT, get_task("regression").make_estimator({"max_iter": 5, "random_state": 0}))
    return fitted.fit(frame[FEATURES], frame[CONTRACT.target])


@pytest.fixture(scope="module")
def client(model: Any, frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Any:
    service = PredictionService(model, CONTRACT, "1", "b-1", {}, serving=LIMITS,
                                log_dir=tmp_path_factory.mktemp("log"), reference=frame.head(100))
    assert service.inference_path == "compiled"
    with TestClient(create_app(service)) as test_client:
        yield test_client


def _records(frame: pd.DataFrame, count: int = 3) -> list[dict[str, Any]]:
    return json.loads(frame[FEATURES].head(count).to_json(orient="records", date_format="iso"))


def _post(client: TestClient, body: Any) -> tuple[int, dict[str, Any]]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/predict", content=content)
    return response.status_code, response.json()


def _csv(path: Path, frame: pd.DataFrame, column: str, row: int, text: str) -> Path:
    bad = frame.astype({column: object})
    bad.loc[row, column] = text
    bad.to_csv(path, index=False)
    return path


def _file_refusal(path: Path) -> str:
    with pytest.raises(DataError) as caught:
        CONTRACT.validate(read_table(path, CONTRACT), source=str(path))
    return str(caught.value)


# ----------------------------------------------------------------------------- bools

def test_the_text_false_over_http_is_refused_not_scored_as_a_holiday(client, frame):
    records = _records(frame)
    records[1]["is_holiday"] = "false"
    status, answer = _post(client, {"records": records})
    assert status == 422 and answer["error"].startswith("record 1: column 'is_holiday': 'false' is not of type bool")


@pytest.mark.parametrize("spelling", ["yes", "no"])
def test_a_csv_whose_flags_say_yes_or_no_is_refused_naming_column_and_row(cli, frame, tmp_path, spelling):
    path = _csv(tmp_path / "flags.csv", frame, "is_holiday", 4, spelling)
    assert f"column 'is_holiday': values are not of type bool: '{spelling}' (row 5)" in _file_refusal(path)
    result = cli("train", "--project", write_project(tmp_path / "p"), "--data", path)
    assert_refused(result, "flags.csv", f"column 'is_holiday': values are not of type bool: '{spelling}' (row 5)")


# ----------------------------------------------------------------------------- numbers

@pytest.mark.parametrize("value, problem", [(500.9, "500.9 is not of type int (not a whole number)"),
                                            (True, "True is not of type int (a bool is not a number)")])
def test_a_fraction_or_a_bool_is_not_a_capacity_over_http(client, frame, value, problem):
    records = _records(frame)
    records[0]["capacity"] = value
    status, answer = _post(client, {"records": records})
    assert (status, answer["error"]) == (422, f"record 0: column 'capacity': {problem}")


def test_a_fraction_in_a_file_is_refused_and_an_integral_float_is_that_integer(frame, tmp_path):
    assert "column 'capacity': values are not of type int: 500.9 (row 3)" in \
        _file_refusal(_csv(tmp_path / "f.csv", frame, "capacity", 2, "500.9"))
    read = CONTRACT.validate(read_table(_csv(tmp_path / "g.csv", frame, "capacity", 2, "864.0"), CONTRACT), "g")
    assert read["capacity"].iloc[2] == 864 and str(read["capacity"].dtype) == "int64"


# ----------------------------------------------------------------------------- ids

def test_an_id_of_001_is_the_same_key_and_pseudonym_in_csv_and_parquet(frame, tmp_path):
    ids = frame.assign(car_park_id=frame["car_park_id"].str.replace("CP", ""),
                       last_entry_plate=frame["car_park_id"].str.replace("CP", "0"))
    assert ids["car_park_id"].iloc[0] == "001"
    ids.to_csv(tmp_path / "ids.csv", index=False)
    ids.to_parquet(tmp_path / "ids.parquet", index=False)
    from_csv = CONTRACT.validate(read_table(tmp_path / "ids.csv", CONTRACT), "ids.csv")
    from_parquet = CONTRACT.validate(read_table(tmp_path / "ids.parquet", CONTRACT), "ids.parquet")
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert from_csv["car_park_id"].iloc[0] == "001"
    key = b"k" * 32
    pd.testing.assert_frame_equal(pseudonymise(from_csv, ["last_entry_plate"], key),
                                  pseudonymise(from_parquet, ["last_entry_plate"], key))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_header_with_a_column_twice_is_refused_naming_it(frame, tmp_path, suffix):
    twice = pd.concat([frame, frame[["capacity"]]], axis=1)
    path = tmp_path / f"twice{suffix}"
    if suffix == ".csv":
        twice.to_csv(path, index=False)
    else:  # pyarrow writes what pandas holds: two columns of one name
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_arrays([pa.array(twice.iloc[:, i]) for i in range(twice.shape[1])],
                                            names=list(twice.columns)), path)
    with pytest.raises(DataError, match=rf"twice{suffix}: column 'capacity' appears 2 times"):
        read_table(path, CONTRACT)


def test_a_50_mb_id_is_refused_naming_column_and_row(frame, tmp_path):
    path = _csv(tmp_path / "huge.csv", frame.head(5), "car_park_id", 3, "X" * 50_000_000)
    message = _file_refusal(path)
    assert "column 'car_park_id': 1 value(s) longer than 256 characters" in message and "(row 4)" in message
    assert len(message) < 1000  # the value is cut, not echoed


def test_a_long_id_over_http_is_refused_naming_the_field(client, frame):
    records = _records(frame)
    records[2]["car_park_id"] = "P" * 300
    status, answer = _post(client, {"records": records})
    assert status == 422 and answer["error"].startswith("record 2: column 'car_park_id': ")
    assert "is longer than 256 characters" in answer["error"]


def test_a_latin1_file_is_refused_naming_column_and_row(frame, tmp_path):
    path = tmp_path / "latin1.csv"
    frame.head(10).to_csv(path, index=False)
    lines = path.read_bytes().split(b"\n")
    lines[6] = lines[6].replace(b"CP", "Å".encode("latin-1") + b"P", 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"latin1.csv: row 6 \(line 7\), column 'car_park_id': not valid UTF-8"):
        read_table(path, CONTRACT)


# ----------------------------------------------------------------------------- shapes no request may have

@pytest.mark.parametrize("value, shown", [({}, "a JSON object"), ([], "a JSON array")])
def test_a_timestamp_sent_as_an_object_or_array_gets_422(client, frame, value, shown):
    records = _records(frame)
    records[1]["timestamp"] = value
    status, answer = _post(client, {"records": records})
    assert (status, answer["error"]) == (422, f"record 1: column 'timestamp': {shown} is not of type datetime")


def test_a_body_nested_10000_levels_deep_gets_400_and_the_service_goes_on(client, frame):
    status, answer = _post(client, b'{"records": [{"timestamp": ' + b"[" * 10_000 + b"]" * 10_000 + b"}]}")
    assert status == 400 and "nested too deeply" in answer["error"]
    assert _post(client, {"records": _records(frame)})[0] == 200


@pytest.mark.parametrize("column", ["car_park_id", "car_park_kind"])
def test_a_lone_surrogate_is_refused_at_the_door_in_every_text_column(client, frame, column):
    records = _records(frame)
    records[2][column] = "CP\ud800"
    status, answer = _post(client, {"records": records})
    assert status == 422 and answer["error"].startswith(f"record 2: column '{column}': 'CP\\ud800' is not valid "
                                                        "text (a lone surrogate")
    bad = frame.astype({column: object})
    bad.loc[2, column] = "CP\ud800"
    with pytest.raises(DataError, match=rf"column '{column}': values are not of type \w+: 'CP\\ud800' \(row 3\)"):
        CONTRACT.validate(bad, "frame")


def test_a_lone_surrogate_in_an_ignored_field_name_is_answered_not_a_500(client, frame):
    records = _records(frame, 1)
    records[0]["note\ud800"] = 1
    status, answer = _post(client, {"records": records})
    assert status == 200 and answer["warnings"] == ["ignored field(s) that are not model features: note\\ud800"]


# ----------------------------------------------------------------------------- nulls, nullable ints

@pytest.mark.parametrize("column", ["capacity", "car_park_id", "timestamp", "is_holiday"])
def test_a_missing_value_in_a_non_nullable_column_is_refused_alike_over_http_and_in_files(client, frame, tmp_path,
                                                                                           column):
    records = _records(frame)
    records[1][column] = None
    status, answer = _post(client, {"records": records})
    assert (status, answer["error"]) == (422, f"record 1: column '{column}': null but the column is not nullable")
    message = _file_refusal(_csv(tmp_path / "null.csv", frame, column, 1, ""))
    assert f"column '{column}': 1 null value(s) but the column is not nullable" in message and "(row 2)" in message


def test_a_nullable_int_column_validates_and_trains(frame):
    raw = copy.deepcopy(CONTRACT.raw)
    next(c for c in raw["columns"] if c["name"] == "capacity")["nullable"] = True
    contract = contract_from_dict(raw)
    data = frame.astype({"capacity": object})
    data.loc[[3, 40], "capacity"] = None
    valid = contract.validate(data, "frame")
    assert str(valid["capacity"].dtype) == "Int64" and valid["capacity"].isna().sum() == 2
    fitted = build_model(contract, get_task("regression").make_estimator({"max_iter": 5, "random_state": 0}))
    fitted.fit(valid[contract.feature_columns], valid[contract.target])
    assert np.isfinite(fitted.predict(valid[contract.feature_columns])).all()
    compiled, note = load_compiled(fitted, contract, contract.feature_columns, valid.head(200))
    assert compiled is not None, note  # its null probe included: the fast path agrees with the pipeline
    row = json.loads(valid[contract.feature_columns].iloc[[3]].to_json(orient="records", date_format="iso"))
    values = RecordValidator(contract, contract.feature_columns).rows(row)
    assert compiled.pipeline.predict(values)[0] == pytest.approx(fitted.predict(valid[contract.feature_columns]
                                                                                .iloc[[3]])[0], abs=1e-9)


# ----------------------------------------------------------------------------- the contract file

@pytest.mark.parametrize("edit, fragment", [
    (lambda text: text + "\ntime_zones: UTC\n", "unknown field(s) time_zones"),
    (lambda text: text.replace("    min: 1\n    max: 20000", "    min: 20000\n    max: 1"),
     "column 'capacity': 'min' (20000) is greater than 'max' (1)"),
    (lambda text: text + "\nname: another-contract\n", "key 'name' is written twice (lines"),
    (lambda text: text.replace("    type: int\n", "    type: int\n    type: float\n", 1),
     "key 'columns[3].type' is written twice"),
    (lambda text: text.replace("    nullable: true\n", "    nullable: 'yes'\n", 1), "'nullable' must be true or false"),
    (lambda text: text.replace("time_zone: Europe/Stockholm", "time_zone: Europe/Stockholmm"),
     "'time_zone' 'Europe/Stockholmm' is not a time zone"),
])
def test_a_contract_file_is_read_strictly_naming_the_file_and_key(tmp_path, edit, fragment):
    path = tmp_path / "contract.yaml"
    path.write_text(edit(CONTRACT_PATH.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_contract(path)
    assert str(caught.value).startswith(f"{path}: ") and fragment in str(caught.value), caught.value


# ----------------------------------------------------------------------------- keys in batch scoring

def test_infer_finds_a_duplicate_key_260k_rows_apart(tmp_path):
    rows = example_data(months=12, car_parks=36, seed=3).drop(columns=[CONTRACT.target])
    assert len(rows) > 262_000
    rows.loc[262_000, ["car_park_id", "timestamp"]] = rows.loc[10, ["car_park_id", "timestamp"]].to_numpy()
    source = tmp_path / "big.parquet"
    rows.to_parquet(source, index=False)
    with pytest.raises(DataError) as caught:
        score_file(_Zero(), CONTRACT, source, tmp_path / "out.parquet", "1", "b", threads=0)
    assert "(row 262001, the same key as row 11)" in str(caught.value)
    assert not (tmp_path / "out.parquet").exists()


# ----------------------------------------------------------------------------- the future

@pytest.mark.parametrize("command", ["train", "export-data"])
def test_train_and_export_refuse_times_in_2098(cli, frame, tmp_path, command):
    late = frame.assign(timestamp=frame["timestamp"] + pd.DateOffset(years=74))
    path = tmp_path / "future.csv"
    late.to_csv(path, index=False)
    extra = ["--out", tmp_path / "exchange"] if command == "export-data" else []
    result = cli(command, "--project", write_project(tmp_path / "p"), "--data", path, *extra)
    assert_refused(result, "future.csv: column 'timestamp':", f"{len(late)} time(s) later than",
                   "2098-01-01 00:00:00+01:00 (row 1)", "data.max_days_ahead")
    assert not (tmp_path / "exchange").exists()


def test_the_horizon_is_now_plus_max_days_ahead(frame):
    valid = CONTRACT.validate(frame, "frame")
    last = valid["timestamp"].max()
    now = (last - pd.Timedelta(days=2)).to_pydatetime()
    beyond = int((valid["timestamp"] > last - pd.Timedelta(days=1)).sum())
    with pytest.raises(DataError, match=rf"frame: column 'timestamp': {beyond} time\(s\) later than "
                                        r"2024-01-30T23:00:00\+01:00 \(now \+ 1 day"):
        CONTRACT.check_horizon(valid, "frame", 1, now=now)
    CONTRACT.check_horizon(valid, "frame", 2, now=now)  # on the horizon is allowed
    CONTRACT.check_horizon(valid, "frame", 0, now=last.to_pydatetime())
    with pytest.raises(ValueError, match="aware"):
        CONTRACT.check_horizon(valid, "frame", 1, now=dt.datetime(2024, 1, 1))


# ----------------------------------------------------------------------------- records at the library door

def test_the_record_door_refuses_each_example_naming_record_and_field(frame):
    for column, value in [("is_holiday", "false"), ("capacity", 500.9), ("capacity", False),
                          ("car_park_id", "\udfff"), ("timestamp", {}), ("car_park_id", 1)]:
        records = _records(frame)
        records[2][column] = value
        with pytest.raises(RecordError) as caught:
            RecordValidator(CONTRACT).rows(records)
        assert (caught.value.index, caught.value.field) == (2, column)
