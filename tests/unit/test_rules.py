"""The contract's column rules: one meaning per value, the same at every door.

Each test feeds a value through the doors that can carry it: a request record
(the per-record validator), a frame (``DataContract.validate``, the pandera
schema), a CSV file read with the contract (``read_table`` then
``DataContract.validate``, as training reads it) and the same file scored in
chunks of one row (``score_file``: the vectorised chunk validator, rows
counted over the whole file). A refusal names the column and the row (the
record, 0-based, for requests; the row from 1 for frames and files).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from collabops.data.contract import contract_from_dict
from collabops.data.dataset import read_table
from collabops.data.rules import RecordError, RecordValidator, rules_for
from collabops.errors import DataError
from collabops.production.scoring import fast_validate, score_file

CONTRACT = contract_from_dict({
    "name": "rules-test", "version": 1, "time_column": "ts", "target": "y", "entity_column": "site",
    "segment_column": "kind", "time_zone": "Europe/Stockholm",
    "columns": [
        {"name": "ts", "type": "datetime"},
        {"name": "site", "type": "string", "max_length": 8},
        {"name": "kind", "type": "category", "categories": ["a", "b"]},
        {"name": "note", "type": "string", "nullable": True},
        {"name": "flag", "type": "bool"},
        {"name": "size", "type": "int", "min": 0, "max": 1000},
        {"name": "level", "type": "float", "min": -10, "max": 10, "nullable": True},
        {"name": "price", "type": "float", "min": 0, "max": 100},
        {"name": "y", "type": "float"},
    ]})
FEATURES = CONTRACT.feature_columns
BAD_ROW = 2


def _records() -> list[dict[str, Any]]:
    """Four valid records, as JSON decodes them."""
    return [{"ts": f"2024-03-01T0{i}:00:00", "site": f"00{i}", "kind": "ab"[i % 2], "note": None if i % 2 else "n",
             "flag": i % 2 == 0, "size": 10 * i, "level": None if i == 3 else -1.5 * i, "price": 2.5 + i}
            for i in range(4)]


def _csv_text(records: list[dict[str, Any]], spelled: dict[str, str] | None = None) -> str:
    """The records as a CSV file writes them; ``spelled`` replaces fields of row BAD_ROW by raw text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FEATURES)
    for i, record in enumerate(records):
        row = ["" if record[name] is None else str(record[name]).lower() if isinstance(record[name], bool)
               else str(record[name]) for name in FEATURES]
        if i == BAD_ROW and spelled:
            row = [spelled.get(name, value) for name, value in zip(FEATURES, row, strict=True)]
        writer.writerow(row)
    return out.getvalue()


class _Zeros:
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(frame))


def _read_and_validate(path: Path) -> pd.DataFrame:
    """A file as training reads it: ``read_table`` with the contract, then the contract's pandera schema."""
    return CONTRACT.validate(read_table(path, CONTRACT), source=str(path), columns=FEATURES)


def _refusal(call) -> str:
    with pytest.raises(DataError) as caught:
        call()
    return str(caught.value)


def _record_door(column: str, value: Any) -> RecordError:
    records = _records()
    records[BAD_ROW][column] = value
    with pytest.raises(RecordError) as caught:
        RecordValidator(CONTRACT).rows(records)
    return caught.value


def assert_refused(tmp_path: Path, column: str, value: Any = None, text: str | None = None,
                   record: bool = True) -> list[str]:
    """``value`` in a record and a frame, ``text`` in a CSV file: refused at each door, naming column and row.

    Returns the messages (record, frame, file, scoring) for further checks.
    """
    messages = []
    if record:
        error = _record_door(column, value)
        assert (error.index, error.field) == (BAD_ROW, column)
        assert str(error).startswith(f"record {BAD_ROW}: column '{column}': ")
        messages.append(str(error))
        records = _records()
        records[BAD_ROW][column] = value
        frame = pd.DataFrame.from_records(records, columns=FEATURES)
        messages.append(_refusal(lambda: CONTRACT.validate(frame, source="request", columns=FEATURES)))
        assert fast_validate(CONTRACT, frame, FEATURES) is None
        first = rules_for(CONTRACT).check_frame(frame, FEATURES).first()
        assert (first.column, first.rows) == (column, (BAD_ROW,))
    if text is not None:
        path = tmp_path / "bad.csv"
        path.write_text(_csv_text(_records(), {column: text}))
        messages.append(_refusal(lambda: _read_and_validate(path)))
        messages.append(_refusal(lambda: score_file(_Zeros(), CONTRACT, path, tmp_path / "out.csv", "1", "b",
                                                    chunk_rows=1, threads=0)))
        assert not (tmp_path / "out.csv").exists()
    for message in messages[1 if record else 0:]:
        assert f"column '{column}'" in message and f"(row {BAD_ROW + 1})" in message, message
    return messages


def accepted(tmp_path: Path, column: str, value: Any = None, text: str | None = None, record: bool = True) -> list:
    """The normalised value of ``column`` at BAD_ROW from each door that carries it (record, frame, file, scoring)."""
    got = []
    if record:
        records = _records()
        records[BAD_ROW][column] = value
        got.append(RecordValidator(CONTRACT).rows(records)[BAD_ROW][FEATURES.index(column)])
        frame = CONTRACT.validate(pd.DataFrame.from_records(records, columns=FEATURES), "r", columns=FEATURES)
        got.append(frame[column].iloc[BAD_ROW])
    if text is not None:
        path = tmp_path / "good.csv"
        path.write_text(_csv_text(_records(), {column: text}))
        got.append(_read_and_validate(path)[column].iloc[BAD_ROW])
        out = tmp_path / "scored.csv"
        assert score_file(_Zeros(), CONTRACT, path, out, "1", "b", chunk_rows=1, threads=0, overwrite=True) == 4
    return got


# ----------------------------------------------------------------------------- bool

@pytest.mark.parametrize("text, expected", [("true", True), ("FALSE", False), ("True", True), ("1", True),
                                            ("0", False)])
def test_bool_files_spell_true_false_1_0_in_any_case(tmp_path, text, expected):
    assert accepted(tmp_path, "flag", text=text, record=False) == [expected]


def test_bool_records_take_json_booleans(tmp_path):
    assert accepted(tmp_path, "flag", False) == [False, False]


@pytest.mark.parametrize("text", ["yes", "no", "2", "t", "1.0"])
def test_bool_other_spellings_are_refused_in_files(tmp_path, text):
    message = assert_refused(tmp_path, "flag", text=text, record=False)[0]
    assert f"column 'flag': values are not of type bool: '{text}' (row 3)" in message


@pytest.mark.parametrize("value", ["false", "true", 0, 1, "yes"])
def test_bool_records_refuse_text_and_numbers(tmp_path, value):
    message = assert_refused(tmp_path, "flag", value)[0]
    assert message.startswith(f"record 2: column 'flag': {value!r} is not of type bool")


def test_bool_parquet_files_take_real_bools_and_0_1_integers(tmp_path):
    frame = pd.DataFrame.from_records(_records(), columns=FEATURES)
    for flags in ([True, False, True, False], [1, 0, 1, 0]):
        frame.assign(flag=flags).to_parquet(tmp_path / "f.parquet")
        read = _read_and_validate(tmp_path / "f.parquet")
        assert read["flag"].tolist() == [True, False, True, False]
    frame.assign(flag=[1, 0, 2, 0]).to_parquet(tmp_path / "f.parquet")
    message = _refusal(lambda: _read_and_validate(tmp_path / "f.parquet"))
    assert "column 'flag': values are not of type bool: 2 (row 3)" in message


# ----------------------------------------------------------------------------- int

def test_int_an_integral_float_is_that_integer(tmp_path):
    got = accepted(tmp_path, "size", 864.0, text="864.0")
    assert got == [864, 864, 864] and type(got[0]) is int


def test_int_a_fraction_is_refused(tmp_path):
    messages = assert_refused(tmp_path, "size", 500.9, text="500.9")
    assert messages[0] == "record 2: column 'size': 500.9 is not of type int (not a whole number)"
    assert "column 'size': values are not of type int: 500.9 (row 3)" in messages[2]


@pytest.mark.parametrize("column", ["size", "price"])
def test_a_bool_is_never_a_number(tmp_path, column):
    message = assert_refused(tmp_path, column, True, text="true")[0]
    assert message.endswith(f"True is not of type {CONTRACT.column(column).type} (a bool is not a number)")


def test_int_text_in_a_record_is_refused_in_a_file_it_is_read(tmp_path):
    assert_refused(tmp_path, "size", "717")
    assert accepted(tmp_path, "size", text="717", record=False) == [717]
    assert_refused(tmp_path, "size", text="lots", record=False)


def test_int_range_is_checked_after_the_type(tmp_path):
    messages = assert_refused(tmp_path, "size", 1001, text="1001")
    assert messages[0].endswith("1001 is not in [0, 1000]")
    assert "column 'size': 1 value(s) not in [0, 1000]: 1001 (row 3)" in messages[1]


# ----------------------------------------------------------------------------- float

def test_float_takes_ints_and_floats(tmp_path):
    assert accepted(tmp_path, "price", 7, text="7") == [7.0, 7.0, 7.0]
    assert accepted(tmp_path, "price", 7.25, text="7.25") == [7.25, 7.25, 7.25]


def test_float_an_integer_a_float_cannot_hold_exactly_is_refused(tmp_path):
    assert_refused(tmp_path, "level", 2 ** 53 + 1)


@pytest.mark.parametrize("value", [None, math.nan])
def test_float_null_only_where_nullable(tmp_path, value):
    got = accepted(tmp_path, "level", value, text="")
    assert all(math.isnan(v) for v in got)
    messages = assert_refused(tmp_path, "price", value, text="")
    assert messages[0] == "record 2: column 'price': null but the column is not nullable"


# ----------------------------------------------------------------------------- text

def test_text_columns_read_digits_as_text(tmp_path):
    assert accepted(tmp_path, "site", "001", text="001") == ["001", "001", "001"]
    assert accepted(tmp_path, "note", "NA", text="NA") == ["NA", "NA", "NA"]  # a word, not a null


@pytest.mark.parametrize("column", ["site", "kind"])
def test_text_columns_refuse_numbers(tmp_path, column):
    message = assert_refused(tmp_path, column, 5)[0]
    assert message == f"record 2: column '{column}': 5 is not of type {CONTRACT.column(column).type}"


def test_text_longer_than_max_length_is_refused(tmp_path):
    messages = assert_refused(tmp_path, "site", "S" * 9, text="S" * 9)
    assert messages[0] == "record 2: column 'site': 'SSSSSSSSS' is longer than 8 characters"
    assert "column 'site': 1 value(s) longer than 8 characters: 'SSSSSSSSS' (row 3)" in messages[1]
    assert rules_for(CONTRACT).rule("note").max_length == 256  # the default


def test_unknown_category_is_refused(tmp_path):
    assert assert_refused(tmp_path, "kind", "c", text="c")[0].endswith("'c' is not one of a, b")


# ----------------------------------------------------------------------------- files

def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text(_csv_text(_records()).replace("price", "size", 1))
    for call in (lambda: read_table(path, CONTRACT),
                 lambda: score_file(_Zeros(), CONTRACT, path, tmp_path / "o.csv", "1", "b", threads=0)):
        assert "twice.csv: column 'size' appears 2 times in the header" in _refusal(call)


def test_a_file_that_is_not_utf8_names_row_and_column(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(_csv_text(_records(), {"note": "caf\u00e9"}).encode("latin-1"))
    for call in (lambda: read_table(path, CONTRACT),
                 lambda: score_file(_Zeros(), CONTRACT, path, tmp_path / "o.csv", "1", "b", chunk_rows=1,
                                    threads=0)):
        message = _refusal(call)
        assert "latin1.csv: row 3 (line 4), column 'note': not valid UTF-8 text (byte 0xe9)" in message


# ----------------------------------------------------------------------------- datetime

@pytest.mark.parametrize("text, expected", [
    ("2024-03-01", dt.datetime(2024, 3, 1)),
    ("2024-03-01T07:30", dt.datetime(2024, 3, 1, 7, 30)),
    ("2024-03-01 07:30:15", dt.datetime(2024, 3, 1, 7, 30, 15)),
    ("2024-03-01T07:30:15.5", dt.datetime(2024, 3, 1, 7, 30, 15, 500000)),
    ("2024-03-01 07:30:15.123456789", pd.Timestamp("2024-03-01 07:30:15.123456789")),  # as pandas writes ns
])
def test_datetime_takes_naive_iso_8601_as_wall_time_in_the_contracts_zone(tmp_path, text, expected):
    in_stockholm = pd.Timestamp(expected).tz_localize("Europe/Stockholm")
    got = accepted(tmp_path, "ts", text, text=text)
    assert got == [in_stockholm] * 3 and all(str(v.tz) == "Europe/Stockholm" for v in got)


@pytest.mark.parametrize("text, wall", [
    ("2024-03-01T07:30:00+02:00", "2024-03-01 06:30"),
    ("2024-03-01T05:30Z", "2024-03-01 06:30"),
    ("2024-03-01 06:30:00.25+0100", "2024-03-01 06:30:00.25"),
    ("2024-03-01T00:30:00.123456789-05:00", "2024-03-01 06:30:00.123456789"),
])
def test_datetime_with_an_offset_is_an_instant_converted_into_the_zone(tmp_path, text, wall):
    assert accepted(tmp_path, "ts", text, text=text) == [pd.Timestamp(wall).tz_localize("Europe/Stockholm")] * 3


@pytest.mark.parametrize("value", [1709276400, 1709276400000, 1.7e9])
def test_datetime_refuses_epoch_numbers(tmp_path, value):
    messages = assert_refused(tmp_path, "ts", value, text=str(value))
    assert "a number is not a timestamp" in messages[0]


def test_datetime_refuses_epoch_numbers_in_parquet(tmp_path):
    frame = pd.DataFrame.from_records(_records(), columns=FEATURES)
    frame.assign(ts=[1709276400 + 3600 * i for i in range(4)]).to_parquet(tmp_path / "epoch.parquet")
    message = _refusal(lambda: _read_and_validate(tmp_path / "epoch.parquet"))
    assert "column 'ts': values are not of type datetime: 1709276400 (row 1)" in message


@pytest.mark.parametrize("text", ["2024-03-01T00:00:00 UTC", "2024-03-01T00:00:00+01", "2024-03-01+01:00",
                                  "2024-03-01T00:00:00z", "2024-03-01T00:00:00+25:00", "01/03/2024", "2024-02-30",
                                  "3000-01-01", "2261-12-31T23:30:00-05:00", "yesterday"])
def test_datetime_refuses_other_layouts_and_offsets_and_impossible_dates(tmp_path, text):
    assert_refused(tmp_path, "ts", text, text=text)


# ----------------------------------------------------------------------------- nulls and keys

@pytest.mark.parametrize("column", ["ts", "site", "kind", "flag", "size", "price"])
def test_a_missing_value_in_a_non_nullable_column_is_refused_the_same_way(tmp_path, column):
    messages = assert_refused(tmp_path, column, None, text="")
    assert messages[0] == f"record 2: column '{column}': null but the column is not nullable"
    for message in messages[1:]:
        assert f"column '{column}': 1 null value(s) but the column is not nullable" in message


def test_nullable_text_and_floats_take_nulls_as_none_and_nan(tmp_path):
    assert accepted(tmp_path, "note", None, text="") == [None] * 3


def test_a_missing_field_and_a_repeated_key_name_record_and_field():
    records = _records()
    del records[1]["size"]
    with pytest.raises(RecordError, match=r"^record 1: column 'size': missing$"):
        RecordValidator(CONTRACT).rows(records)
    records = _records()
    records[3].update(site=records[0]["site"], ts=records[0]["ts"].replace("T", " "))  # the same moment
    with pytest.raises(RecordError, match=r"^record 3: column 'site': duplicate \(site, ts\) key: record 0"):
        RecordValidator(CONTRACT).rows(records)
    frame = pd.DataFrame.from_records(records, columns=FEATURES)
    message = _refusal(lambda: CONTRACT.validate(frame, "r", columns=FEATURES))
    assert "duplicate rows for (site, ts): ('000', 2024-03-01 00:00:00+01:00) (row 4)" in message


def test_the_record_validator_needs_no_model_and_ignores_other_fields():
    records = [dict(r, extra="ignored") for r in _records()]
    rows = RecordValidator(rules_for(CONTRACT), ["size", "flag"]).rows(records)
    assert rows == [(0, True), (10, False), (20, True), (30, False)]
    with pytest.raises(RecordError, match=r"^record 0: is not a JSON object"):
        RecordValidator(CONTRACT).rows([["not", "a", "record"]])
