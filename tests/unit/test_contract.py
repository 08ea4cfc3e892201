"""The data contract: parsing, validation, and the messages bad data gets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from collabops.data.contract import contract_from_dict, load_contract
from collabops.data.generator import GeneratorSettings, generate
from collabops.errors import ConfigError, DataError

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


def test_generated_data_passes_and_is_converted_without_loss(contract, frame):
    as_text = frame.astype({"timestamp": str, "capacity": float, "is_holiday": object})  # ISO text, 864.0, bools
    validated = contract.validate(as_text, source="gen.csv")
    assert str(validated["timestamp"].dtype) == "datetime64[ns, Europe/Stockholm]"  # the contract's time zone
    assert str(validated["capacity"].dtype) == "int64"
    assert str(validated["is_holiday"].dtype) == "bool"
    pd.testing.assert_frame_equal(validated, frame)


def test_numbers_written_as_text_are_refused_in_a_frame(contract, frame):
    """A frame is not a file: "557" in an int column is text (read files with read_table(path, contract))."""
    with pytest.raises(DataError, match="column 'capacity': values are not of type int: '557' \\(row 1\\)"):
        contract.validate(frame.astype({"capacity": str}), source="gen.csv")


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
         "duplicate rows for (car_park_id, timestamp): ('CP001', 2024-01-01 00:00:00+01:00) (row 2957)"),
        (lambda f: f.assign(capacity=f["capacity"].astype(float).where(f.index != 6, 500.9)),
         "column 'capacity': values are not of type int: 500.9 (row 7)"),
        (lambda f: f.assign(price_per_hour=f["price_per_hour"].astype(object).where(f.index != 1, True)),
         "column 'price_per_hour': values are not of type float: True (row 2)"),
        (lambda f: f.assign(is_holiday=f["is_holiday"].astype(object).where(f.index != 2, "yes")),
         "column 'is_holiday': values are not of type bool: 'yes' (row 3)"),
        (lambda f: f.assign(car_park_id=f["car_park_id"].where(f.index != 3, 17)),
         "column 'car_park_id': values are not of type string: 17 (row 4)"),
        (lambda f: f.assign(car_park_id=f["car_park_id"].where(f.index != 3, "P" * 300)),
         "column 'car_park_id': 1 value(s) longer than 256 characters: 'PPPPPPPPPPPPPPPPPPPPPPPPPPPPPP'... "
         "(300 characters) (row 4)"),
        (lambda f: f.assign(timestamp=f["timestamp"].astype(object).where(f.index != 4, 1704067200)),
         "column 'timestamp': values are not of type datetime: 1704067200 (row 5)"),
        (lambda f: f.assign(timestamp=f["timestamp"].astype(str).where(f.index != 4, "01/05/2024 08:00")),
         "column 'timestamp': values are not of type datetime: '01/05/2024 08:00' (row 5)"),
        (lambda f: f.assign(capacity=f["capacity"].where(f.index != 5, pd.NA).astype("Int64")),
         "column 'capacity': 1 null value(s) but the column is not nullable: <NA> (row 6)"),
        (lambda f: pd.concat([f, f[["capacity"]]], axis=1), "column 'capacity' appears 2 times"),
    ],
    ids=["missing-column", "wrong-type", "out-of-range", "unknown-category", "null", "duplicate", "fraction-as-int",
         "bool-as-number", "yes-as-bool", "number-as-string", "long-string", "epoch-timestamp", "day-month-timestamp",
         "null-int", "column-twice"],
)
def test_contract_violations_name_file_column_and_row(contract, frame, mutate, expected):
    with pytest.raises(DataError) as error:
        contract.validate(mutate(frame.copy()), source="data/occupancy.csv")
    message = str(error.value)
    assert message.startswith("data/occupancy.csv:")
    assert expected in message


def test_many_bad_rows_are_summarised_not_listed(contract, frame):
    bad = frame.assign(occupancy_rate=2.0)
    with pytest.raises(DataError) as caught:
        contract.validate(bad, "x.csv")
    message = str(caught.value)
    assert f"({len(frame)} rows in all)" in message
    assert len(message) < 2000


def test_constant_target_is_refused(contract, frame):
    with pytest.raises(DataError, match=r"'occupancy_rate' \(the target\) is constant: every row is 0\.5"):
        contract.check_trainable(frame.assign(occupancy_rate=0.5), source="x.csv")


def test_header_only_frame_is_refused(contract, frame):
    with pytest.raises(DataError, match=r"x\.csv: has a header but no data rows"):
        contract.validate(frame.iloc[:0], source="x.csv")


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda raw: raw.pop("target"), "missing field 'target'"),
        (lambda raw: raw.update(target="nope"), "target 'nope' is not one of the columns"),
        (lambda raw: raw["columns"][0].update(type="timestamp"), "type 'timestamp' is not one of"),
        (lambda raw: raw["columns"][2].pop("categories"), "needs a non-empty 'categories' list"),
        (lambda raw: raw["columns"][3].update(minimum=1), "unknown field(s) minimum"),
        (lambda raw: raw["columns"][3].update(max_length=10), "'max_length' applies to string columns only"),
        (lambda raw: raw["columns"][1].update(max_length=0), "'max_length' must be a whole number of at least 1"),
        (lambda raw: raw["columns"][1].update(min=0), "'min' and 'max' apply to int and float columns only"),
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


def test_max_length_is_read_and_defaults_to_256(contract):
    import copy

    from collabops.data.rules import DEFAULT_MAX_LENGTH

    assert contract.rules.rule("car_park_id").max_length == DEFAULT_MAX_LENGTH == 256
    raw = copy.deepcopy(contract.raw)
    raw["columns"][1]["max_length"] = 8
    short = contract_from_dict(raw)
    assert short.column("car_park_id").max_length == 8 and short.rules.rule("car_park_id").max_length == 8
    assert short.digest() != contract.digest()


def test_a_contract_file_that_is_not_a_mapping_or_not_yaml_is_refused(tmp_path):
    path = tmp_path / "contract.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match=r"contract.yaml: a data contract file must be a mapping"):
        load_contract(path)
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match=r"contract.yaml: not valid YAML"):
        load_contract(path)
