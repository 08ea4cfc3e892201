"""Bad data files given to ``train --data``, ``export-data --data`` and ``infer``, refused before ZenML.

Each refusal names the file, the column and the first offending rows
(counted from 1, header excluded), exits 1 without a traceback, and leaves
nothing behind: no output file, no exchange folder, no ZenML store (the
``cli`` fixture fails the test if the command reached the store).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import assert_refused, example_data, write_project


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return example_data(months=1, car_parks=4, seed=9)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project")


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _set(frame: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


READ_CASES = {
    "missing file": (lambda d, g: d / "nope.csv", ["nope.csv: file not found"]),
    "empty file": (lambda d, g: _text(d / "empty.csv", ""), ["empty.csv: file is empty"]),
    "unsupported type": (lambda d, g: _text(d / "data.xlsx", "x"), ["data.xlsx: unsupported file type '.xlsx'"]),
    "a folder": (lambda d, g: _folder(d / "folder.csv"), ["folder.csv: is not a file"]),
}
CONTENT_CASES = {
    "not parquet": (lambda d, g: _text(d / "fake.parquet", "not parquet at all"),
                    ["fake.parquet: cannot be read as parquet"]),
    "header only": (lambda d, g: _write(d / "header.csv", g.iloc[:0]), ["header.csv: has a header but no data rows"]),
    "missing column": (lambda d, g: _write(d / "nocap.csv", g.drop(columns=["capacity"])),
                       ["nocap.csv: missing required column(s) 'capacity'"]),
    "wrong type": (lambda d, g: _write(d / "type.csv", _set(g, "rain_mm", 6, "heavy")),
                   ["type.csv", "column 'rain_mm': values are not of type float", "'heavy' (row 7)"]),
    "out of range": (lambda d, g: _write(d / "range.csv", _set(g, "occupancy_rate", 11, 1.25)),
                     ["range.csv", "column 'occupancy_rate': 1 value(s) not in [0, 1]", "1.25 (row 12)"]),
    "unknown category": (lambda d, g: _write(d / "kind.csv", _set(g, "car_park_kind", 2, "moon_base")),
                         ["kind.csv", "column 'car_park_kind': 1 value(s) not one of", "'moon_base' (row 3)"]),
    "null in a non-null column": (lambda d, g: _write(d / "null.csv", _set(g, "car_park_id", 3, None)),
                                  ["null.csv", "column 'car_park_id'", "not nullable", "(row 4)"]),
    "constant target": (lambda d, g: _write(d / "constant.csv", g.assign(occupancy_rate=0.4)),
                        ["constant.csv: column 'occupancy_rate' (the target) is constant"]),
}
TRAIN_CASES = {
    **READ_CASES, **CONTENT_CASES,
    "too few rows": (lambda d, g: _write(d / "few.csv", g.head(300)),
                     ["few.csv: 300 rows are fewer than the time split needs", "at least 1334 rows"]),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_refuses_a_bad_data_file(cli, good, tmp_path, project, case):
    make, expected = TRAIN_CASES[case]
    result = cli("train", "--project", project, "--data", make(tmp_path, good))
    assert_refused(result, *expected)


@pytest.mark.parametrize("case", list({**READ_CASES, **CONTENT_CASES}))
def test_export_data_refuses_a_bad_data_file_and_writes_no_bundle(cli, good, tmp_path, project, case):
    make, expected = {**READ_CASES, **CONTENT_CASES}[case]
    out = tmp_path / "exchange"
    result = cli("export-data", "--project", project, "--data", make(tmp_path, good), "--out", out)
    assert_refused(result, *expected)
    assert not out.exists()


@pytest.mark.parametrize("case", list(READ_CASES))
def test_infer_refuses_an_unreadable_file_and_writes_nothing(cli, good, tmp_path, project, case):
    """What infer checks before a run: the file's presence, size and type (its content is checked by the run)."""
    make, expected = READ_CASES[case]
    out = tmp_path / "scored" / "predictions.parquet"
    result = cli("infer", "--project", project, "--data", make(tmp_path, good), "--out", out, "--version", "1")
    assert_refused(result, *expected)
    assert not out.parent.exists()


def test_infer_never_overwrites_an_output(cli, good, tmp_path, project):
    data = _write(tmp_path / "in.csv", good)
    out = _text(tmp_path / "scored.csv", "precious")
    assert_refused(cli("infer", "--project", project, "--data", data, "--out", out),
                   f"{out}: already exists; choose another output path")
    assert out.read_text() == "precious"


def test_infer_refuses_an_unsupported_output_type(cli, good, tmp_path, project):
    data = _write(tmp_path / "in.csv", good)
    out = tmp_path / "scored.json"
    assert_refused(cli("infer", "--project", project, "--data", data, "--out", out),
                   f"{out}: unsupported output type '.json' (use .csv or .parquet)")
    assert not out.exists()
