"""The data contract: parsing, validation, and the messages bad data gets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from collabops.data.contract import contract_from_dict, load_contract
from collabops.errors import ConfigError, DataError
from collabops.data.generator import GeneratorSettings, generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def contract():
    return load_contract(ROOT / "configs" / "contract.yaml")


@pytest.fixture(scope="module")
def frame():
    return generate(GeneratorSettings(months=1, car_parks=4, seed=1))


def test_roles_and_feature_columns_exclude_target_and_personal_data(contract):
    assert contract.target == "occupancy_rate"
    assert set(contract.personal_columns) == {"last_entry_plate", "last_entry_customer_id"}
    assert contract.target not in contract.feature_columns
    assert not set(contract.personal_columns) & set(contract.feature_columns)
    assert contract.time_column in contract.feature_columns


def test_generated_data_passes_and_is_coerced(contract, frame):
    as_text = frame.astype({"timestamp": str, "capacity": str})
    validated = contract.validate(as_text, source="gen.csv")
    assert str(validated["timestamp"].dtype) == "datetime64[ns]"
    assert str(validated["capacity"].dtype) == "int64"
    assert len(validated) == len(frame)


def test_digest_changes_with_the_contract(contract):
    changed = dict(contract.raw, version=contract.version + 1)
    assert contract_from_dict(changed).digest() != contract.digest()
    assert contract_from_dict(dict(contract.raw)).digest() == contract.digest()


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda f: f.drop(columns=["capacity"]), "missing required column(s) 'capacity'"),
        (lambda f: f.assign(capacity=f["capacity"].astype(object).where(f.index != 4, "lots")),
         "column 'capacity': values are not of type int: 'lots' (row 5)"),
        (lambda f: f.assign(occupancy_rate=f["occupancy_rate"].where(f.index != 2, 1.7)),
         "column 'occupancy_rate': 1 value(s) not in [0, 1]: 1.7 (row 3)"),
        (lambda f: f.assign(car_park_kind=f["car_park_kind"].where(f.index != 0, "moon_base")),
         "column 'car_park_kind': 1 value(s) not one of"),
        (lambda f: f.assign(price_per_hour=f["price_per_hour"].where(f.index != 9)),
         "column 'price_per_hour': 1 null value(s) but the column is not nullable: nan (row 10)"),
        (lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True),
         "duplicate rows for (car_park_id, timestamp)"),
    ],
    ids=["missing-column", "wrong-type", "out-of-range", "unknown-category", "null", "duplicate"],
)
def test_contract_violations_name_file_column_and_row(contract, frame, mutate, expected):
    with pytest.raises(DataError) as error:
        contract.validate(mutate(frame.copy()), source="data/occupancy.csv")
    message = str(error.value)
    assert message.startswith("data/occupancy.csv:")
    assert expected in message


def test_many_bad_rows_are_summarised_not_listed(contract, frame):
    bad = frame.assign(occupancy_rate=2.0)
    message = str(pytest.raises(DataError, contract.validate, bad, "x.csv").value)
    assert f"({len(frame)} rows in all)" in message
    assert len(message) < 2000


def test_constant_target_is_refused(contract, frame):
    with pytest.raises(DataError, match="'occupancy_rate' \\(the target\\) is constant: every row is 0.5"):
        contract.check_trainable(frame.assign(occupancy_rate=0.5), source="x.csv")


def test_header_only_frame_is_refused(contract, frame):
    with pytest.raises(DataError, match="x.csv: has a header but no data rows"):
        contract.validate(frame.iloc[:0], source="x.csv")


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda raw: raw.pop("target"), "missing field 'target'"),
        (lambda raw: raw.update(target="nope"), "target 'nope' is not one of the columns"),
        (lambda raw: raw["columns"][0].update(type="timestamp"), "type 'timestamp' is not one of"),
        (lambda raw: raw["columns"][2].pop("categories"), "needs a non-empty 'categories' list"),
        (lambda raw: raw["columns"][3].update(minimum=1), "unknown field(s) minimum"),
    ],
)
def test_bad_contract_files_are_refused_with_the_field(contract, change, expected):
    import copy

    raw = copy.deepcopy(contract.raw)
    change(raw)
    with pytest.raises(ConfigError, match=expected.replace("(", "\\(").replace(")", "\\)")):
        contract_from_dict(raw, source="configs/contract.yaml")


def test_missing_contract_file(tmp_path):
    with pytest.raises(ConfigError, match="data contract file not found"):
        load_contract(tmp_path / "nope.yaml")
