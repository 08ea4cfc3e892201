"""The compiled path gives the pipeline's predictions, refuses what the contract's rules refuse, and falls back."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from collabops.data.contract import contract_from_dict, load_contract
from collabops.data.generator import GeneratorSettings, generate
from collabops.errors import DataError
from collabops.production import compiled
from collabops.production.compiled import (
    TOLERANCE,
    TREE_ROWS,
    CompiledPipeline,
    CompiledTrees,
    NotCompilable,
    RecordRejected,
    compile_pipeline,
    frame_from_rows,
    load_compiled,
)
from collabops.production.serving import PredictionService, RequestError
from collabops.training.features import CalendarFeatures, build_model
from collabops.training.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = load_contract(ROOT / "configs" / "contract.yaml")
FEATURES = CONTRACT.feature_columns

# A contract with what the project's does not have: nullable strings, categories and flags.
NULLABLE = contract_from_dict({
    "name": "nullable-test", "version": 1, "time_column": "ts", "target": "y", "entity_column": "site",
    "segment_column": "kind",
    "columns": [
        {"name": "ts", "type": "datetime"},
        {"name": "site", "type": "string"},
        {"name": "kind", "type": "category", "categories": ["a", "b", "c"], "nullable": True},
        {"name": "note", "type": "string", "nullable": True},
        {"name": "flag", "type": "bool", "nullable": True},
        {"name": "open", "type": "bool"},
        {"name": "size", "type": "int", "min": 0, "max": 1000},
        {"name": "level", "type": "float", "min": -10, "max": 10, "nullable": True},
        {"name": "y", "type": "float"},
    ]})


def _records(frame: pd.DataFrame, features: list[str]) -> list[dict]:
    """Rows as a client sends them: JSON, timestamps as ISO strings, nulls as null."""
    return json.loads(frame[features].to_json(orient="records", date_format="iso"))


def _reference(model, contract, features, records: list[dict]) -> np.ndarray:
    """What the service answered before the compiled path: pandera, then the pipeline."""
    frame = contract.validate(pd.DataFrame.from_records(records, columns=features), source="ref", columns=features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unknown categories, on purpose
        return np.asarray(model.predict(frame), dtype=float)


def _compiled(model, contract, features, records: list[dict], chunk: int) -> np.ndarray:
    compiled_model, note = load_compiled(model, contract, features, pd.DataFrame.from_records(records[:200]))
    assert compiled_model is not None, note
    rows = compiled_model.validator.rows(records)
    return np.concatenate([compiled_model.pipeline.predict(rows[i:i + chunk]) for i in range(0, len(rows), chunk)])


@pytest.fixture(scope="module")
def project_model():
    frame = CONTRACT.validate(generate(GeneratorSettings(months=2, car_parks=6, seed=3)), "gen")
    model = build_model(CONTRACT, HistGradientBoostingRegressor(max_iter=40, max_leaf_nodes=15, random_state=0))
    model.fit(frame[FEATURES], frame[CONTRACT.target])
    return frame, model


def _nullable_records(n: int, with_nulls: bool, seed: int) -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(seed)

    def pick(values: list, null_share: float) -> list:
        return [None if with_nulls and rng.random() < null_share else values[rng.integers(len(values))]
                for _ in range(n)]

    start = pd.Timestamp("2024-03-01")
    records = [{"ts": (start + pd.Timedelta(hours=int(i))).isoformat(), "site": f"S{i % 7}"} for i in range(n)]
    for record, kind, note, flag, open_, size, level in zip(
            records, pick(["a", "b", "c"], 0.15), pick(["p", "q", "r"], 0.2), pick([True, False], 0.2),
            pick([True, False], 0), pick([3, 40, 200, 900], 0), pick([-2.5, 0.5, 4.0, 9.5], 0.2), strict=True):
        record.update(kind=kind, note=note, flag=flag, open=open_, size=size, level=level)
    y = np.array([r["size"] / 1000 + (r["kind"] == "a") * 0.5 + (r["flag"] is True) * 0.3 + (r["note"] == "q") * 0.2
                  + (r["level"] or 0) * 0.05 + r["open"] * 0.1 + int(r["ts"][11:13]) / 24 for r in records])
    return records, y + rng.normal(0, 0.01, n)


@pytest.fixture(scope="module", params=[True, False], ids=["trained-with-nulls", "trained-without-nulls"])
def nullable_model(request):
    features = NULLABLE.feature_columns
    records, y = _nullable_records(600, with_nulls=request.param, seed=1)
    frame = NULLABLE.validate(pd.DataFrame.from_records(records, columns=features), source="train", columns=features)
    model = build_model(NULLABLE, HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=15, random_state=0))
    model.fit(frame, y)
    return model


# ----------------------------------------------------------------------------- equality with scikit-learn

@pytest.mark.parametrize("chunk", [1, TREE_ROWS, 250], ids=["one-row", "tree-walk-batches", "estimator-batches"])
def test_compiled_predictions_equal_the_pipeline_on_generated_data(project_model, chunk):
    frame, model = project_model
    base = _records(frame.iloc[::7].head(250), FEATURES)
    requests = [base,
                [{**r, "temperature_c": None, "rain_mm": None} for r in base],  # nulls where nullable
                [{**r, "car_park_id": f"CP9{i:02d}"} for i, r in enumerate(base)],  # car parks never seen
                [{**r, "is_holiday": not r["is_holiday"], "event_nearby": not r["event_nearby"]} for r in base]]
    for records in requests:
        expected = _reference(model, CONTRACT, FEATURES, records)
        got = _compiled(model, CONTRACT, FEATURES, records, chunk)
        assert np.max(np.abs(got - expected)) <= TOLERANCE


def test_nullable_columns_unknown_categories_and_flags(nullable_model):
    features = NULLABLE.feature_columns
    records, _ = _nullable_records(300, with_nulls=True, seed=2)
    records += [{**r, "site": "never-seen", "note": "new", "ts": r["ts"].replace("2024", "2025")} for r in records[:40]]
    assert any(r["flag"] is None for r in records) and any(r["kind"] is None for r in records)
    expected = _reference(nullable_model, NULLABLE, features, records)
    for chunk in (1, TREE_ROWS, 400):
        got = _compiled(nullable_model, NULLABLE, features, records, chunk)
        assert np.max(np.abs(got - expected)) <= TOLERANCE


def test_the_tree_walk_reproduces_the_estimator_bit_for_bit_with_missing_values(project_model):
    frame, model = project_model
    pipeline = compile_pipeline(model, CONTRACT, FEATURES)
    assert pipeline.trees is not None
    X = model[:-1].transform(frame[FEATURES].head(64)).astype(float)
    X[::3, -6] = np.nan  # a passthrough column (rain) with missing values
    np.testing.assert_array_equal(pipeline.trees.predict(X), model[-1].predict(X))


def test_fast_rows_are_the_frame_pandera_makes():
    """Every timestamp layout the fast path accepts, ints in float columns and nulls: the same frame as pandera's."""
    layouts = ["2024-03-{d:02d}", "2024-03-{d:02d}T07:30", "2024-03-{d:02d} 07:30:15",
               "2024-03-{d:02d}T07:30:15.5", "2024-03-{d:02d}T23:59:59.123456"]
    validator = compiled.RecordValidator(CONTRACT, FEATURES)
    for layout in layouts:
        records = [{"timestamp": layout.format(d=d), "car_park_id": f"CP{d:03d}", "car_park_kind": "airport",
                    "capacity": 100 + d, "temperature_c": None if d % 2 else -3, "rain_mm": float("nan") if d % 3
                    else 0, "is_holiday": d % 2 == 0, "event_nearby": False, "price_per_hour": 12.5}
                   for d in (1, 13, 28)]
        expected = CONTRACT.validate(pd.DataFrame.from_records(records, columns=FEATURES), "r", columns=FEATURES)
        got = frame_from_rows(validator.rows(records), CONTRACT, FEATURES)
        pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_index_type=False)


# ----------------------------------------------------------------------------- what the rules refuse

def _three(frame: pd.DataFrame) -> list[dict]:
    return _records(frame.head(3), FEATURES)


@pytest.mark.parametrize("field, value", [
    ("capacity", "717"),  # text is not an int in a JSON record
    ("capacity", 717.5),
    ("capacity", True),  # a bool is not a number
    ("capacity", None),
    ("capacity", 0),
    ("price_per_hour", None),
    ("price_per_hour", float("nan")),
    ("price_per_hour", -3),
    ("price_per_hour", False),
    ("temperature_c", "3"),
    ("car_park_kind", "moon_base"),
    ("car_park_id", 5),
    ("car_park_id", "P" * 257),
    ("is_holiday", "yes"),
    ("is_holiday", "false"),  # JSON has booleans: the text "false" is not one
    ("is_holiday", 0),
    ("is_holiday", None),
    ("timestamp", "2024-03-31T02:30:00"),  # a wall time the Stockholm clocks jump over
    ("timestamp", "2024-01-01T00:00:00 UTC"),  # an offset is Z or +hh:mm, nothing else
    ("timestamp", 1704085200000),
    ("timestamp", "01/02/2024"),
    ("timestamp", "2024-02-30T00:00:00"),
    ("timestamp", "3000-01-01T00:00:00"),
])
def test_refused_values_name_the_record_and_field(project_model, field, value):
    records = _three(project_model[0])
    records[2][field] = value
    with pytest.raises(RecordRejected) as caught:
        compiled.RecordValidator(CONTRACT, FEATURES).rows(records)
    assert (caught.value.index, caught.value.field) == (2, field)
    assert str(caught.value).startswith(f"record 2: column '{field}': ")
    with pytest.raises(DataError, match=f"column '{field}'.*\\(row 3\\)"):  # pandera refuses it too
        CONTRACT.validate(pd.DataFrame.from_records(records, columns=FEATURES), "request", columns=FEATURES)


def test_lossless_forms_are_accepted_as_the_values_they_are(project_model):
    records = _three(project_model[0])
    records[0]["capacity"] = float(records[0]["capacity"])  # 864.0 is 864
    records[1]["price_per_hour"] = 12  # an int is a number
    records[2]["timestamp"] = records[2]["timestamp"][:10]  # a date is its midnight, whatever record 0 wrote
    rows = compiled.RecordValidator(CONTRACT, FEATURES).rows(records)
    capacity, price, time = (FEATURES.index(n) for n in ("capacity", "price_per_hour", "timestamp"))
    assert type(rows[0][capacity]) is int and rows[0][capacity] == records[0]["capacity"]
    assert type(rows[1][price]) is float and rows[1][price] == 12.0
    assert rows[2][time] == pd.Timestamp(records[2]["timestamp"]).tz_localize(CONTRACT.time_zone)


@pytest.mark.parametrize("change, index, field", [
    (lambda rs: rs[1].pop("capacity"), 1, "capacity"),
    (lambda rs: rs[2].update(car_park_id=rs[0]["car_park_id"], timestamp=rs[0]["timestamp"]), 2, "car_park_id"),
])
def test_missing_fields_and_duplicate_keys_are_refused(project_model, change, index, field):
    records = _three(project_model[0])
    change(records)
    with pytest.raises(RecordRejected) as caught:
        compiled.RecordValidator(CONTRACT, FEATURES).rows(records)
    assert (caught.value.index, caught.value.field) == (index, field)


def test_the_record_validator_is_the_rules_one_and_needs_no_model():
    from collabops.data.rules import RecordError, RecordValidator

    assert compiled.RecordValidator is RecordValidator and RecordRejected is RecordError
    assert issubclass(RecordError, ValueError)


@pytest.fixture(scope="module")
def service(project_model, tmp_path_factory):
    frame, model = project_model
    return PredictionService(model, CONTRACT, "7", "bundle-x", {}, log_dir=tmp_path_factory.mktemp("log"),
                             reference=frame.sample(300, random_state=0), max_records=50)


def test_the_service_refuses_text_numbers_on_both_paths_and_takes_integral_floats(service, project_model):
    assert service.inference_path == "compiled" and service.metadata()["inference_path"] == "compiled"
    plain = _three(project_model[0])
    as_text = [dict(r) for r in plain]
    as_text[1]["capacity"] = str(as_text[1]["capacity"])  # "717": refused by the rules, on the fast path
    with pytest.raises(RequestError) as caught:
        service.parse(json.dumps({"records": as_text}).encode())
    assert caught.value.status == 422
    assert f"record 1: column 'capacity': '{as_text[1]['capacity']}' is not of type int" in str(caught.value)
    integral = [dict(r, capacity=float(r["capacity"])) for r in plain]  # 717.0: the same integer
    fast, same = service.parse(json.dumps({"records": plain}).encode()), service.parse(json.dumps(
        {"records": integral}).encode())
    assert fast.rows is not None and same.rows is not None and fast.rows == same.rows
    assert service.predict(fast) == service.predict(same)


@pytest.mark.parametrize("change, fragment", [
    (lambda r: r.pop("capacity"), "record 0: column 'capacity': missing"),
    (lambda r: r.update(capacity="lots"), "record 0: column 'capacity': 'lots' is not of type int"),
    (lambda r: r.update(price_per_hour=-3), "record 0: column 'price_per_hour': -3.0 is not in [0, 100]"),
])
def test_refusals_name_the_record_and_the_field(service, project_model, change, fragment):
    record = _three(project_model[0])[0]
    change(record)
    with pytest.raises(RequestError) as caught:
        service.parse(json.dumps({"records": [record]}).encode())
    assert caught.value.status == 422 and fragment in str(caught.value)


def test_too_many_records_is_413(service, project_model):
    records = _records(project_model[0].head(51), FEATURES)
    with pytest.raises(RequestError) as caught:
        service.parse(json.dumps({"records": records}).encode())
    assert caught.value.status == 413 and "the limit is 50" in str(caught.value)


def test_the_inference_log_is_the_same_from_both_paths(service, project_model, monkeypatch):
    plain = _three(project_model[0])
    service.log.flush()
    before = set(service.log.directory.glob("inference-*.parquet"))
    service.predict(service.parse(json.dumps({"records": plain}).encode()))  # compiled path
    with monkeypatch.context() as patch:
        patch.setattr(service.decoder, "compiled", None)  # as if the model could not be compiled: the pandera path
        slow = service.parse(json.dumps({"records": plain}).encode())
        assert slow.rows is None and slow.frame is not None
        service.predict(slow)
    service.log.flush()
    written = sorted(set(service.log.directory.glob("inference-*.parquet")) - before)
    assert len(written) == 1 and f"-{os.getpid()}-" in written[0].name
    logged = pd.read_parquet(written[0])
    fast, slow = logged.iloc[:3].reset_index(drop=True), logged.iloc[3:].reset_index(drop=True)
    pd.testing.assert_frame_equal(fast.drop(columns="served_at"), slow.drop(columns="served_at"))
    assert list(logged.columns) == [*FEATURES, "prediction", "model_version", "bundle_id", "served_at"]
    assert str(logged["served_at"].dtype) == "datetime64[ns, UTC]" and (logged["bundle_id"] == "bundle-x").all()


# ----------------------------------------------------------------------------- fallback

def test_a_model_of_another_shape_falls_back_to_sklearn(project_model):
    frame, _ = project_model
    baseline = get_task("regression").make_baseline(CONTRACT).fit(frame[FEATURES], frame[CONTRACT.target])
    service = PredictionService(baseline, CONTRACT, "1", "b", {}, reference=frame.head(100))
    assert service.inference_path == "sklearn" and service.compiled is None
    assert service.inference_note.startswith("sklearn (model not compiled: the model is a SeasonalProfileBaseline")
    records = _records(frame.head(20), FEATURES)
    values, _ = service.answer(json.dumps({"records": records}).encode())
    np.testing.assert_allclose(values, baseline.predict(frame[FEATURES].head(20)), atol=0)


def test_an_unknown_transformer_is_named(project_model):
    frame, _ = project_model
    numeric = ["capacity", "price_per_hour"]
    model = Pipeline([("calendar", CalendarFeatures(CONTRACT.time_column)),
                      ("encode", ColumnTransformer([("scale", StandardScaler(), numeric)], remainder="drop")),
                      ("estimator", HistGradientBoostingRegressor(max_iter=5))])
    model.fit(frame[FEATURES], frame[CONTRACT.target])
    with pytest.raises(NotCompilable, match="transformer 'scale' is a StandardScaler"):
        compile_pipeline(model, CONTRACT, FEATURES)
    assert load_compiled(model, CONTRACT, FEATURES, frame)[0] is None


def test_a_failed_check_falls_back_and_says_so(project_model, monkeypatch):
    frame, model = project_model
    real = CompiledPipeline.matrix
    monkeypatch.setattr(CompiledPipeline, "matrix", lambda self, rows: real(self, rows) * 1.5)  # a broken compiler
    found, note = load_compiled(model, CONTRACT, FEATURES, frame.head(100))
    assert found is None and note.startswith("sklearn (compiled predictions differ from the pipeline by up to")


def test_a_failed_tree_walk_only_switches_the_walk_off(project_model, monkeypatch):
    frame, model = project_model
    real = CompiledTrees.predict
    monkeypatch.setattr(CompiledTrees, "predict", lambda self, X: real(self, X) + 1e-6)
    found, note = load_compiled(model, CONTRACT, FEATURES, frame.head(100))
    assert found is not None and found.pipeline.trees is None and "tree walk OFF" in note
    rows = found.validator.rows(_records(frame.head(1), FEATURES))
    assert found.pipeline.predict(rows)[0] == pytest.approx(model.predict(frame[FEATURES].head(1))[0], abs=TOLERANCE)


def test_without_a_reference_sample_there_is_no_compiled_path(project_model):
    _, model = project_model
    found, note = load_compiled(model, CONTRACT, FEATURES, None)
    assert found is None and note == "sklearn (no reference sample to check the compiled path against)"
