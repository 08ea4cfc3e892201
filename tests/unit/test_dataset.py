"""Reading dataset files: every unreadable file is named and refused."""

from __future__ import annotations

import pytest

from collabops.data.dataset import read_table, write_table
from collabops.errors import DataError
from collabops.data.generator import GeneratorSettings, generate


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
