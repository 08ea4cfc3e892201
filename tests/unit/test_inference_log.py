"""The inference log's flush: the compiled path's buffered rows become one frame, in order, with their identity."""

from __future__ import annotations

import pandas as pd

from collabops.data.contract import load_contract
from collabops.production import compiled
from collabops.production.compiled import frame_from_rows
from collabops.production.serving.inference_log import InferenceLog
from tests.conftest import ROOT

CONTRACT = load_contract(ROOT / "configs" / "contract.yaml")
FEATURES = CONTRACT.feature_columns


def _records(count: int, first: int = 0) -> list[dict]:
    return [{"timestamp": f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:00", "car_park_id": f"CP{i:05d}",
             "car_park_kind": "airport", "capacity": 100 + i % 500,
             "temperature_c": None if i % 7 == 0 else (i % 400) / 10,
             "rain_mm": 0.0, "is_holiday": i % 2 == 0, "event_nearby": False, "price_per_hour": 2.5}
            for i in range(first, first + count)]


def test_a_flush_writes_every_buffered_row_once_in_order(tmp_path):
    validator = compiled.RecordValidator(CONTRACT, FEATURES)
    log = InferenceLog(tmp_path, flush_seconds=3600, contract=CONTRACT, features=FEATURES,
                       identity={"model_version": "4", "bundle_id": "b-1"})
    batches = [_records(count, first) for count, first in ((1, 0), (2_500, 1), (1_499, 2_501))]
    for number, batch in enumerate(batches):
        log.append_rows(validator.rows(batch), [float(number)] * len(batch))
    log.close()

    [written] = list(tmp_path.glob("inference-*.parquet"))
    logged = pd.read_parquet(written)
    rows = [row for batch in batches for row in validator.rows(batch)]
    expected = frame_from_rows(rows, CONTRACT, FEATURES)
    pd.testing.assert_frame_equal(logged[FEATURES], expected)
    assert list(logged.columns) == [*FEATURES, "prediction", "model_version", "bundle_id", "served_at"]
    assert logged["prediction"].tolist() == [0.0] + [1.0] * 2_500 + [2.0] * 1_499
    assert set(logged["model_version"]) == {"4"} and set(logged["bundle_id"]) == {"b-1"}
    assert str(logged["served_at"].dtype) == "datetime64[ns, UTC]" and logged["served_at"].is_monotonic_increasing
    assert not list(tmp_path.glob(".*partial"))
