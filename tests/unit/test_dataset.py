"""Reading dataset files: every unreadable file is named and refused; with the contract, values keep their meaning."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from collabops.data.contract import load_contract
from collabops.data.dataset import read_table, write_table
from collabops.data.generator import GeneratorSettings, generate
from collabops.errors import DataError


def test_round_trip_csv_and_parquet(tmp_path):
    frame = generate(GeneratorSettings(months=1, car_parks=2))
    for name in ("d.csv", "d.parquet"):
        write_table(frame, tmp_path / name)
        assert len(read_table(tmp_path / name)) == len(frame)
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("content, name, message", [
    (None, "missing.csv", "missing.csv: file not found"),
    ("", "empty.csv", "empty.csv: file is empty"),
    ("timestamp,car_park_id\n", "header.csv", "header.csv: has a header but no data rows"),
    ("x", "data.json", "unsupported file type '.json'"),
    ("not parquet at all", "broken.parquet", "broken.parquet: cannot be read as parquet"),
])
def test_unreadable_files(tmp_path, content, name, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_table(path)


# --- reading with the contract: the file's spellings, one meaning per value --------------------------------

CONTRACT = load_contract(Path(__file__).resolve().parents[2] / "configs" / "contract.yaml")


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "d.csv") -> Path:
    frame.to_csv(tmp_path / name, index=False)
    return tmp_path / name


def test_the_current_call_without_a_contract_still_reads_as_pandas_guesses(tmp_path):
    frame = generate(GeneratorSettings(months=1, car_parks=2)).assign(car_park_id="007")
    assert read_table(_csv(tmp_path, frame))["car_park_id"].iloc[0] == 7


def test_with_the_contract_text_stays_text_and_the_frame_validates_as_generated(tmp_path):
    frame = generate(GeneratorSettings(months=1, car_parks=2))
    frame["car_park_id"] = frame["car_park_id"].str.replace("CP", "")  # "001": a number to pandas
    frame.loc[3, "last_entry_plate"] = "NA"  # a plate, not a null
    path = _csv(tmp_path, frame)
    read = read_table(path, CONTRACT)
    assert read["car_park_id"].iloc[0] == "001" and read["last_entry_plate"].iloc[3] == "NA"
    validated = CONTRACT.validate(read, source=str(path))
    expected = CONTRACT.validate(frame, source="generated")
    pd.testing.assert_frame_equal(validated, expected)


def test_with_the_contract_the_file_spellings_of_bools_and_numbers_are_read(tmp_path):
    frame = generate(GeneratorSettings(months=1, car_parks=2)).head(6)
    frame["is_holiday"] = ["true", "FALSE", "1", "0", "True", "false"]
    frame["capacity"] = ["864.0", "12", "+7", "1e3", "20000", "1"]
    read = read_table(_csv(tmp_path, frame.assign(event_nearby=[1, 0, 1, 0, 1, 0])), CONTRACT)
    validated = CONTRACT.validate(read, source="d.csv")
    assert validated["is_holiday"].tolist() == [True, False, True, False, True, False]
    assert validated["event_nearby"].tolist() == [True, False] * 3
    assert validated["capacity"].tolist() == [864, 12, 7, 1000, 20000, 1]


def test_a_bad_value_is_named_alone_not_with_its_whole_column(tmp_path):
    frame = generate(GeneratorSettings(months=1, car_parks=2)).astype({"rain_mm": object})
    frame.loc[6, "rain_mm"] = "heavy"
    path = _csv(tmp_path, frame)
    with pytest.raises(DataError) as caught:
        CONTRACT.validate(read_table(path, CONTRACT), source=str(path))
    assert "column 'rain_mm': values are not of type float: 'heavy' (row 7)" in str(caught.value)
    assert "(row 1)" not in str(caught.value)


def test_a_column_named_twice_in_the_header_is_refused(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("timestamp,capacity,car_park_id,capacity\n2024-01-01,1,a,2\n")
    for contract in (None, CONTRACT):
        with pytest.raises(DataError, match=r"twice\.csv: column 'capacity' appears 2 times in the header"):
            read_table(path, contract)


def test_a_file_that_is_not_utf8_is_refused_naming_row_and_column(tmp_path):
    frame = generate(GeneratorSettings(months=1, car_parks=2)).head(20)
    path = _csv(tmp_path, frame)
    lines = path.read_bytes().split(b"\n")
    lines[9] = lines[9].replace(b"CP", "Ö".encode("latin-1") + b"P", 1)  # row 9: latin-1, not UTF-8
    path.write_bytes(b"\n".join(lines))
    for contract in (None, CONTRACT):
        with pytest.raises(DataError, match=r"d.csv: row 9 \(line 10\), column 'car_park_id': not valid UTF-8 "
                                            r"text \(byte 0xd6\)"):
            read_table(path, contract)
