"""Batch scoring across chunk and block boundaries, the vectorised validation and the threads."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from collabops.data.contract import load_contract
from collabops.data.dataset import read_table
from collabops.data.generator import GeneratorSettings, generate
from collabops.errors import DataError
from collabops.production.scoring import fast_validate, score_file
from collabops.training.features import build_model
from collabops.training.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = load_contract(ROOT / "configs" / "contract.yaml")
FEATURES = CONTRACT.feature_columns


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """OpenMP teams of two on tiny blocks wait for each other on a busy machine: keep these tests fast.

    score_file's prediction threads set their own limit; the calling thread's is this one.
    """
    with threadpool_limits(1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def frame():
    return generate(GeneratorSettings(months=1, car_parks=4, seed=5))  # 2,966 rows, personal columns and target


@pytest.fixture(scope="module")
def model(frame):
    """A real (small) gradient-boosting pipeline: its predict uses OpenMP threads."""
    estimator = get_task("regression").make_estimator({"max_iter": 15, "random_state": 0})
    return build_model(CONTRACT, estimator).fit(frame[FEATURES], frame[CONTRACT.target])


def _pandera(frame: pd.DataFrame) -> pd.DataFrame:
    return CONTRACT.validate(frame, source="x", columns=FEATURES)


def _message(call) -> str:
    with pytest.raises(DataError) as caught:
        call()
    return str(caught.value)


def _set(frame: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


def _to_file(frame: pd.DataFrame, path: Path) -> Path:
    """CSV as is; Parquet with a column of mixed Python types (e.g. numbers and a word) written as text."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
        return path
    frame = frame.copy()
    for name in frame.select_dtypes(include=object).columns:
        kinds = {type(v) for v in frame[name] if v is not None and v == v}
        if len(kinds) > 1:
            frame[name] = [None if v is None or v != v else str(v) for v in frame[name]]
    frame.to_parquet(path, index=False)
    return path


def _no_scoring_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("scoring-")]


# --- the vectorised validation agrees with the contract's pandera schema ---------------------------------

@pytest.mark.parametrize("reread", ["as generated", "parquet", "csv"])
def test_fast_validation_equals_the_contracts_on_clean_data(tmp_path, frame, reread):
    data = frame
    if reread == "parquet":
        frame.to_parquet(tmp_path / "f.parquet")
        data = pd.read_parquet(tmp_path / "f.parquet")
    elif reread == "csv":  # timestamps come back as strings, the index starts at 0
        frame.to_csv(tmp_path / "f.csv", index=False)
        data = pd.read_csv(tmp_path / "f.csv").iloc[1000:]  # a chunk: the index starts at 1000
        assert data["timestamp"].dtype == object
    fast = fast_validate(CONTRACT, data, FEATURES)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, _pandera(data))


def test_fast_validation_converts_narrower_types_like_the_contract(frame):
    data = frame.astype({"capacity": "int32", "price_per_hour": "float32", "timestamp": "datetime64[us, UTC]"})
    data["rain_mm"] = data["rain_mm"].fillna(0).astype("int64")  # whole numbers in a float column
    fast = fast_validate(CONTRACT, data, FEATURES)
    assert fast is not None and str(fast["timestamp"].dtype) == "datetime64[ns, Europe/Stockholm]"
    assert (fast["timestamp"] == frame["timestamp"]).all()  # the same instants, on the contract's clock
    pd.testing.assert_frame_equal(fast, _pandera(data))


BAD = {
    "wrong type": ("capacity", 7, "many"),
    "out of range": ("price_per_hour", 8, 101.0),
    "below range": ("temperature_c", 9, -41.0),
    "unknown category": ("car_park_kind", 10, "harbour"),
    "null id": ("car_park_id", 11, None),
    "number as id": ("car_park_id", 12, 5),
    "null flag": ("is_holiday", 13, None),
    "bad timestamp": ("timestamp", 14, "yesterday"),
    "null price": ("price_per_hour", 15, np.nan),
    "fraction as int": ("capacity", 16, 500.9),
    "bool as number": ("price_per_hour", 17, True),
    "epoch as timestamp": ("timestamp", 18, 1704067200),
    "wall time in the spring gap": ("timestamp", 19, "2024-03-31T02:30:00"),
    "offset without a time": ("timestamp", 24, "2024-01-01+01:00"),
    "long id": ("car_park_id", 20, "P" * 257),
    "text as int": ("capacity", 21, "717"),
    "number as flag": ("event_nearby", 22, 1),  # in a frame; a file may spell a flag 1 or 0
    "two as flag": ("event_nearby", 23, 2),
}


@pytest.mark.parametrize("case", list(BAD))
def test_fast_validation_and_the_contract_refuse_the_same_bad_data(frame, case):
    column, row, value = BAD[case]
    bad = _set(frame, column, row, value)
    assert fast_validate(CONTRACT, bad, FEATURES) is None
    problem = CONTRACT.rules.check_frame(bad, FEATURES).first()
    assert (problem.column, problem.rows) == (column, (row,))
    message = _message(lambda: _pandera(bad))
    assert f"column '{column}'" in message and f"(row {row + 1})" in message


def test_fast_validation_accepts_lossless_forms_like_the_contract(frame):
    data = frame.astype({"capacity": float, "is_holiday": object})  # 864.0 is 864; Python bools
    data["timestamp"] = [t.isoformat(sep=" " if i % 2 else "T") for i, t in enumerate(frame["timestamp"])]
    fast = fast_validate(CONTRACT, data, FEATURES)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, _pandera(data))
    pd.testing.assert_frame_equal(fast, frame[FEATURES])


def test_fast_validation_leaves_duplicates_and_missing_columns_to_the_contract(frame):
    duplicated = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)
    assert fast_validate(CONTRACT, duplicated, FEATURES) is None
    assert fast_validate(CONTRACT, frame.drop(columns=["capacity"]), FEATURES) is None
    assert fast_validate(CONTRACT, frame.iloc[:0], FEATURES) is None


# --- chunk and block boundaries ---------------------------------------------------------------------------

@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("chunk_rows, predict_rows", [(333, 97), (1000, 250), (10_000, 50_000)])
def test_predictions_do_not_depend_on_chunks_blocks_or_threads(tmp_path, frame, model, threads, chunk_rows,
                                                               predict_rows):
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)  # with the target and the personal columns: they are not read
    out = tmp_path / "out.parquet"
    rows = score_file(model, CONTRACT, source, out, "3", "b-9", chunk_rows=chunk_rows, predict_rows=predict_rows,
                      threads=threads)
    scored = pd.read_parquet(out)
    assert rows == len(scored) == len(frame)
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), model.predict(frame[FEATURES]))
    pd.testing.assert_series_equal(scored["timestamp"], frame["timestamp"])
    assert list(scored["car_park_id"]) == list(frame["car_park_id"])
    assert (scored["model_version"] == "3").all() and (scored["bundle_id"] == "b-9").all()
    assert list(scored.columns) == ["timestamp", "car_park_id", "car_park_kind", "prediction", "model_version",
                                    "bundle_id"]
    assert _no_scoring_threads()


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize("case", ["wrong type", "out of range", "null id", "bad timestamp", "fraction as int",
                                  "two as flag"])
def test_errors_in_a_late_chunk_name_the_row_in_the_whole_file(tmp_path, frame, model, threads, suffix, case):
    column, _, value = BAD[case]
    bad = _set(frame, column, 2345, value)  # in the 8th chunk of 300 rows
    source = _to_file(bad, tmp_path / f"bad{suffix}")
    out = tmp_path / "out.parquet"
    message = _message(lambda: score_file(model, CONTRACT, source, out, "7", "b-1", chunk_rows=300,
                                          predict_rows=150, threads=threads))
    # Word for word what the contract says about that chunk, rows counted from 1 over the whole file.
    reread = read_table(source, CONTRACT)
    expected = _message(lambda: CONTRACT.validate(reread.iloc[2100:2400], source=str(source), columns=FEATURES,
                                                  row_offset=2100))
    assert message == expected
    assert f"'{column}'" in message and "(row 2346)" in message and str(source) in message
    assert not out.exists() and not list(tmp_path.glob(".*partial"))
    assert _no_scoring_threads()


def test_duplicate_keys_in_a_late_chunk_are_refused_with_their_rows(tmp_path, frame, model):
    bad = frame.copy()
    bad.loc[2346, ["timestamp", "car_park_id"]] = bad.loc[2345, ["timestamp", "car_park_id"]].to_numpy()
    source = tmp_path / "dup.parquet"
    bad.to_parquet(source, index=False)
    out = tmp_path / "out.csv"
    message = _message(lambda: score_file(model, CONTRACT, source, out, "7", "b-1", chunk_rows=300))
    assert "duplicate rows for (car_park_id, timestamp)" in message and "(row 2347)" in message
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_a_missing_column_in_parquet_is_named_with_the_files_columns(tmp_path, frame, model):
    source = tmp_path / "nocol.parquet"
    frame.drop(columns=["price_per_hour"]).to_parquet(source, index=False)
    message = _message(lambda: score_file(model, CONTRACT, source, tmp_path / "out.parquet", "7", "b-1"))
    assert "missing required column(s) 'price_per_hour'" in message
    assert "the file has: timestamp, car_park_id" in message and "last_entry_plate" in message


class _FailsLate:
    """Delegates to a model but fails from its ``failing_call``-th call on (as a model can, e.g. out of memory)."""

    def __init__(self, model, failing_call: int) -> None:
        self.model, self.failing_call, self.calls = model, failing_call, 0
        self._lock = threading.Lock()

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        with self._lock:
            self.calls += 1
            calls = self.calls
        if calls >= self.failing_call:
            raise MemoryError("no memory left for this block")
        return self.model.predict(features)


@pytest.mark.parametrize("threads", [0, 2])
def test_a_model_failing_in_a_late_block_leaves_no_output(tmp_path, frame, model, threads):
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    out = tmp_path / "out.parquet"
    failing = _FailsLate(model, failing_call=15)  # 20 blocks of 150 rows: the 15th is in the 8th chunk of 300
    with pytest.raises(MemoryError, match="no memory left"):
        score_file(failing, CONTRACT, source, out, "7", "b-1", chunk_rows=300, predict_rows=150, threads=threads)
    assert failing.calls >= 15
    assert not out.exists() and not list(tmp_path.glob(".*partial"))
    assert _no_scoring_threads()


def test_progress_is_logged_per_chunk_with_rows_per_second(tmp_path, frame, model, caplog):
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    with caplog.at_level(logging.INFO, logger="collabops.production.scoring"):
        score_file(model, CONTRACT, source, tmp_path / "out.parquet", "7", "b-1", chunk_rows=1000)
    lines = [r.getMessage() for r in caplog.records if r.name == "collabops.production.scoring"]
    assert len(lines) == 3
    assert lines[0].startswith(f"scored 1,000 of {len(frame):,} rows (") and "rows/s" in lines[0]
    assert lines[-1].startswith(f"scored {len(frame):,} of {len(frame):,} rows (")


def test_prediction_threads_leave_the_callers_openmp_threads_alone(tmp_path, frame, model):
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    with threadpool_limits(2, user_api="openmp"):
        score_file(model, CONTRACT, source, tmp_path / "out.parquet", "7", "b-1", threads=2)
        assert _openmp_effective_n_threads() == 2  # the prediction threads' limit of one is theirs only


def test_chunk_and_block_sizes_must_be_positive(tmp_path, frame, model):
    with pytest.raises(ValueError, match="at least 1"):
        score_file(model, CONTRACT, tmp_path / "in.parquet", tmp_path / "out.parquet", "7", "b-1", predict_rows=0)


@pytest.mark.filterwarnings("ignore:Found unknown categories")  # ids the model never saw, on purpose
def test_a_csv_is_read_with_the_contract_ids_stay_text_and_flags_may_be_spelled(tmp_path, frame, model):
    """Scoring reads files as training does: "001" stays "001", 1/0 and TRUE/false are flags."""
    data = frame.copy()
    data["car_park_id"] = data["car_park_id"].str.replace("CP", "")
    data["is_holiday"] = np.where(frame["is_holiday"], "TRUE", "false")
    data["event_nearby"] = frame["event_nearby"].astype(int)
    source = tmp_path / "spelled.csv"
    data.to_csv(source, index=False)
    out = tmp_path / "out.parquet"
    score_file(model, CONTRACT, source, out, "7", "b-1", chunk_rows=700, threads=0)
    scored = pd.read_parquet(out)
    assert scored["car_park_id"].tolist() == data["car_park_id"].tolist()
    reread = CONTRACT.validate(read_table(source, CONTRACT), source=str(source), columns=FEATURES)
    pd.testing.assert_frame_equal(reread.drop(columns="car_park_id"), frame[FEATURES].drop(columns="car_park_id"),
                                  check_exact=False, rtol=1e-15)  # CSV floats: to the last digit pandas prints
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), model.predict(reread))


def test_a_yes_flag_in_a_late_chunk_of_a_csv_is_refused_with_its_row(tmp_path, frame, model):
    data = frame.astype({"is_holiday": object})
    data.loc[2345, "is_holiday"] = "yes"
    source = tmp_path / "yes.csv"
    data.to_csv(source, index=False)
    message = _message(lambda: score_file(model, CONTRACT, source, tmp_path / "out.csv", "7", "b-1", chunk_rows=300))
    assert "column 'is_holiday': values are not of type bool: 'yes' (row 2346)" in message


class _RecordsArrowPool:
    """A model that records which Arrow memory pool is the default while it predicts."""

    def __init__(self, model, fail: bool = False) -> None:
        self.model, self.fail, self.pools = model, fail, set()

    def predict(self, features):
        import pyarrow as pa

        self.pools.add(pa.default_memory_pool().backend_name)
        if self.fail:
            raise MemoryError("no memory left for this block")
        return self.model.predict(features)


@pytest.mark.parametrize("fail", [False, True])
def test_scoring_reads_with_arrows_jemalloc_pool_and_gives_the_default_back(tmp_path, frame, model, fail):
    import pyarrow as pa

    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    before = pa.default_memory_pool().backend_name
    recording = _RecordsArrowPool(model, fail=fail)
    try:
        score_file(recording, CONTRACT, source, tmp_path / "out.parquet", "7", "b-1", chunk_rows=1000, threads=0)
    except MemoryError:
        assert fail
    jemalloc = "jemalloc" in pa.supported_memory_backends()  # not built in on Windows: the default stays
    assert recording.pools == {"jemalloc" if jemalloc else before}
    assert pa.default_memory_pool().backend_name == before
