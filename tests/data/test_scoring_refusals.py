"""``run.py infer`` on files whose content breaks the contract: refused by the run, no output, no partial file.

What infer checks before a run (presence, size, type, an existing output)
is in test_bad_input.py; the content is validated chunk by chunk inside the
batch-inference run, so these need a model version in the session's store.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import assert_refused, example_data, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def to_score() -> pd.DataFrame:
    """Rows to score: the contract's columns without the target."""
    return example_data(months=1, car_parks=4, seed=9).drop(columns=["occupancy_rate"])


def _set(frame: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


CASES = {
    "header only": (lambda g: g.iloc[:0], ["has a header but no data rows"]),
    "missing column": (lambda g: g.drop(columns=["capacity"]), ["missing required column(s) 'capacity'"]),
    "wrong type": (lambda g: _set(g, "rain_mm", 6, "heavy"),
                   ["column 'rain_mm': values are not of type float", "'heavy' (row 7)"]),
    "out of range": (lambda g: _set(g, "capacity", 11, 0), ["column 'capacity': 1 value(s) not in [1, 20000]",
                                                            "0 (row 12)"]),
    "null in a non-null column": (lambda g: _set(g, "car_park_id", 3, None),
                                  ["column 'car_park_id'", "not nullable", "(row 4)"]),
    "unknown category": (lambda g: _set(g, "car_park_kind", 2, "moon_base"),
                         ["column 'car_park_kind': 1 value(s) not one of", "'moon_base' (row 3)"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_file_breaking_the_contract_is_refused_and_no_output_appears(drift_model, to_score, tmp_path, case):
    change, expected = CASES[case]
    data = tmp_path / "to-score.csv"
    change(to_score).to_csv(data, index=False)
    out = tmp_path / "scored" / "predictions.parquet"
    result = run_cli("infer", "--project", drift_model.project, "--data", data, "--out", out, "--version", "1")
    assert_refused(result, str(data), *expected)
    assert not out.exists() and not list(tmp_path.rglob("*partial*"))


def test_a_good_file_is_scored_with_the_version_on_every_row(drift_model, to_score, tmp_path):
    """The control for the refusals above: the same project and version score a clean file."""
    data = tmp_path / "to-score.parquet"
    to_score.head(500).to_parquet(data, index=False)
    out = tmp_path / "scored.csv"
    result = run_cli("infer", "--project", drift_model.project, "--data", data, "--out", out, "--version", "1")
    assert result.code == 0, result
    scored = pd.read_csv(out)
    assert len(scored) == 500 and scored["prediction"].between(-0.2, 1.2).all()
    assert set(scored["model_version"].astype(str)) == {"1"} and set(scored["bundle_id"]) == {"local"}
    assert f"wrote 500 predictions to {out}" in result.out


def test_an_unknown_version_is_refused(drift_model, to_score, tmp_path: Path):
    data = tmp_path / "to-score.csv"
    to_score.head(10).to_csv(data, index=False)
    out = tmp_path / "scored.csv"
    result = run_cli("infer", "--project", drift_model.project, "--data", data, "--out", out, "--version", "99")
    assert_refused(result, f"model '{drift_model.model_name}' has no version '99' on stack 'industry-local'")
    assert not out.exists()
