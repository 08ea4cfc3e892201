"""Batch scoring: chunked, validated, stamped, never half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collabops.data.contract import load_contract
from collabops.data.generator import GeneratorSettings, generate
from collabops.errors import DataError
from collabops.production.scoring import score_file
from collabops.training.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = load_contract(ROOT / "configs" / "contract.yaml")


@pytest.fixture(scope="module")
def frame():
    return generate(GeneratorSettings(months=1, car_parks=4, seed=3))


@pytest.fixture(scope="module")
def model(frame):
    return get_task("regression").make_baseline(CONTRACT).fit(frame, frame[CONTRACT.target])


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_chunked_scores_equal_one_predict_call(tmp_path, frame, model, suffix):
    source = tmp_path / "in.parquet"
    frame.drop(columns=[CONTRACT.target]).to_parquet(source)
    out = tmp_path / f"out{suffix}"
    rows = score_file(model, CONTRACT, source, out, model_version="7", bundle_id="b-1", chunk_rows=500)
    assert rows == len(frame)
    scored = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    np.testing.assert_allclose(scored["prediction"], model.predict(frame), rtol=1e-12)
    assert set(scored["model_version"].astype(str)) == {"7"} and set(scored["bundle_id"]) == {"b-1"}
    assert not list(tmp_path.glob(".*partial"))


def test_bad_row_in_a_late_chunk_leaves_no_output(tmp_path, frame, model):
    bad = frame.copy()
    bad["capacity"] = bad["capacity"].astype(object)
    bad.loc[1800, "capacity"] = "many"
    source = tmp_path / "bad.csv"
    bad.to_csv(source, index=False)
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=r"bad.csv: 1 problem\(s\).*\n"
                                        r"  - column 'capacity': values are not of type int: 'many' \(row 1801\)$"):
        score_file(model, CONTRACT, source, out, "7", "b-1", chunk_rows=500)
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("make, message", [
    (lambda p, f: p / "missing.csv", "file not found"),
    (lambda p, f: (p / "empty.csv").write_text("") or p / "empty.csv", "file is empty"),
    (lambda p, f: f.iloc[:0].to_csv(p / "header.csv", index=False) or p / "header.csv", "no data rows"),
    (lambda p, f: f.drop(columns=["price_per_hour"]).to_csv(p / "nocol.csv", index=False) or p / "nocol.csv",
     "missing required column(s) 'price_per_hour'"),
])
def test_bad_files_are_refused_and_nothing_is_written(tmp_path, frame, model, make, message):
    out = tmp_path / "out.csv"
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        score_file(model, CONTRACT, make(tmp_path, frame), out, "7", "b-1")
    assert not out.exists()


def test_existing_output_is_never_overwritten(tmp_path, frame, model):
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    out = tmp_path / "out.csv"
    out.write_text("precious")
    with pytest.raises(DataError, match="already exists"):
        score_file(model, CONTRACT, source, out, "7", "b-1")
    assert out.read_text() == "precious"


def test_text_read_as_categories_is_checked_and_converted_like_text(tmp_path, frame):
    """A Parquet file's text columns come as Categoricals (checked once per category): the same verdicts and values."""
    from collabops.data.dataset import iter_table
    from collabops.production.scoring import fast_validate

    features = CONTRACT.feature_columns
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    (chunk,) = list(iter_table(source, CONTRACT, columns=features, chunk_rows=10**6, text_as_categories=True))
    assert isinstance(chunk["car_park_id"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(fast_validate(CONTRACT, chunk, features),
                                  CONTRACT.validate(frame, source="x", columns=features))
    plates = pd.Series(frame["last_entry_plate"].astype("category"))  # nullable text with nulls
    checked = CONTRACT.rules.rule("last_entry_plate").column(plates)
    assert frame["last_entry_plate"].isna().any() and checked.ok
    assert checked.values.tolist() == [None if v is None or v != v else v for v in frame["last_entry_plate"]]
    for name, value in (("car_park_kind", "harbour"), ("car_park_id", "P" * 257), ("car_park_id", None)):
        bad = chunk[name].astype(object).copy()
        bad.iloc[9] = value
        as_category = CONTRACT.rules.rule(name).column(bad.astype("category"))
        as_text = CONTRACT.rules.rule(name).column(bad)
        assert not as_category.ok and [m.tolist() for _, m in as_category.problems()] == \
            [m.tolist() for _, m in as_text.problems()]
