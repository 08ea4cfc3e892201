"""The period's rows and the reference, in the cases where an input is incomplete, damaged or on another clock.

The inference log is written here as :mod:`collabops.production.serving.inference_log`
writes it (features typed by the contract, ``prediction``, ``model_version``,
``bundle_id``, ``served_at`` in UTC, one Parquet file per flush, hidden
``.partial`` files while writing). The verdicts use the project's
monitoring settings with a drift result where nothing drifted, so what moves
the verdict is the input case under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from collabops.data.contract import load_contract
from collabops.errors import ConfigError, DataError, MonitoringError
from collabops.monitoring import current as currents
from collabops.monitoring.drift import ColumnDrift, DriftResult, detect_drift
from collabops.monitoring.live_error import measure_live_error
from collabops.monitoring.quality import check_quality
from collabops.monitoring.reference import REFERENCE_FILE, read_reference
from collabops.monitoring.season import Season
from collabops.monitoring.verdict import decide
from collabops.settings import load_project
from collabops.training.tasks import get_task
from tests.conftest import CONTRACT as CONTRACT_PATH
from tests.conftest import PROJECT, example_data

CONTRACT = load_contract(CONTRACT_PATH)
SETTINGS = load_project(PROJECT).monitoring
ZONE = CONTRACT.time_zone
TIME, ENTITY, TARGET = CONTRACT.time_column, CONTRACT.entity_column, CONTRACT.target
QUALITY_COLUMNS = [c for c in CONTRACT.feature_columns if c != TIME]
VERSION = "3"
SEVERITY = {"ok": 0, "warning": 1, "drift": 2}


def _data(**settings) -> pd.DataFrame:
    return example_data(**{"months": 1, "car_parks": 8, "seed": 5, "start": "2025-01-01", **settings})


def _log_file(folder, frame: pd.DataFrame, sequence: int, drop: tuple[str, ...] = (), version: str = VERSION):
    """One flush of the inference log: the features as the service typed them, then its own columns."""
    features = [c for c in CONTRACT.feature_columns if c not in drop]
    logged = CONTRACT.validate(frame, source="test", columns=list(CONTRACT.feature_columns))[features]
    logged = logged.assign(prediction=frame[TARGET].to_numpy() * 0.9, model_version=version, bundle_id="b-1",
                           served_at=pd.Timestamp("2025-02-01T12:00:00Z") + pd.to_timedelta(np.arange(len(frame)),
                                                                                           unit="s"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"inference-20250201T120000-4242-{sequence:06d}.parquet"
    logged.to_parquet(path, index=False)
    return path


def _quiet_drift(rows: int) -> DriftResult:
    column = ColumnDrift("capacity", "numerical", "wasserstein", 0.1, 0.01, False, 0.01, None, True)
    return DriftResult(columns=[column], reference_rows=5_000, current_rows=rows, sample_rows=rows,
                       prediction_column=None)


SEASON = Season(rows=pd.DataFrame(), covered=True, window_days=21, first="2024-01-01T00:00:00+01:00",
                last="2024-02-21T00:00:00+01:00")


def _verdict(frame: pd.DataFrame, reference: pd.DataFrame, notes=(), live=None):
    quality = check_quality(frame, reference, CONTRACT, QUALITY_COLUMNS, SETTINGS.max_null_increase)
    return decide(len(frame), _quiet_drift(len(frame)), SEASON, quality, live, SETTINGS, list(notes)), quality


# --- the period's options ---------------------------------------------------------------------------------------


def test_a_utc_offset_is_the_same_instant_as_stockholm_wall_time():
    period = currents.parse_period("2025-01-01T00:00:00+00:00", None, ZONE)
    assert period.start == pd.Timestamp("2025-01-01T01:00:00", tz=ZONE)
    assert str(period.start.tz) == ZONE


def test_a_date_is_local_midnight_to_the_end_of_the_day():
    period = currents.parse_period("2025-01-01", "2025-01-31", ZONE)
    assert period.start == pd.Timestamp("2025-01-01", tz=ZONE)
    assert period.end == pd.Timestamp("2025-02-01", tz=ZONE) - pd.Timedelta(1, "ns")


def test_until_before_since_is_refused():
    with pytest.raises(ConfigError, match="--since 2025-02-01 is after --until 2025-01-01"):
        currents.parse_period("2025-02-01", "2025-01-01", ZONE)


@pytest.mark.parametrize("option, since, until", [("--since", "2025-13-01", None), ("--until", None, "2025-13-01")])
def test_an_impossible_date_is_refused_naming_the_option(option, since, until):
    with pytest.raises(ConfigError, match=f"^{option} '2025-13-01'"):
        currents.parse_period(since, until, ZONE)


def test_a_wall_time_in_the_spring_gap_is_refused_and_with_an_offset_accepted():
    with pytest.raises(ConfigError, match="--since '2025-03-30T02:30:00' is not one instant in Europe/Stockholm"):
        currents.parse_period("2025-03-30T02:30:00", None, ZONE)
    assert currents.parse_period("2025-03-30T02:30:00+02:00", None, ZONE).start == pd.Timestamp(
        "2025-03-30T00:30:00Z").tz_convert(ZONE)


# --- the inference log ------------------------------------------------------------------------------------------


def test_a_period_without_rows_gives_an_empty_frame_and_no_error(tmp_path):
    _log_file(tmp_path / "log", _data(), 1)
    period = currents.parse_period("2024-06-01", "2024-06-30", ZONE)
    data = currents.read_inference_log(tmp_path / "log", CONTRACT, VERSION, period=period)
    assert len(data.frame) == 0 and data.notes == []
    # the rows exist: another period finds them, another version does not
    assert len(currents.read_inference_log(tmp_path / "log", CONTRACT, VERSION).frame) == len(_data())
    assert len(currents.read_inference_log(tmp_path / "log", CONTRACT, "4").frame) == 0


def test_a_period_without_outcomes_has_no_live_error_and_says_so(tmp_path):
    frame = _data()
    _log_file(tmp_path / "log", frame, 1)
    data = currents.read_inference_log(tmp_path / "log", CONTRACT, VERSION)
    others = _data(start="2024-06-01")[[ENTITY, TIME, TARGET]]  # outcomes, but of other hours
    others.to_csv(tmp_path / "outcomes.csv", index=False)
    data = currents.join_outcomes(data, tmp_path / "outcomes.csv", CONTRACT)
    assert data.outcomes == 0 and data.frame[TARGET].isna().all()
    live = measure_live_error(data.frame, CONTRACT, get_task("regression"), "prediction",
                              {"overall": 0.03, "by_segment": {}, "holdout": None})
    assert live is None
    verdict, _ = _verdict(data.frame, frame, live=live)
    assert any("live error not measured: no row of the period has its outcome yet" in r for r in verdict.reasons)


def test_a_feature_missing_from_the_log_is_a_quality_problem_and_never_ok(tmp_path):
    frame = _data()
    _log_file(tmp_path / "log", frame, 1, drop=("temperature_c",))
    data = currents.read_inference_log(tmp_path / "log", CONTRACT, VERSION)
    assert "temperature_c" not in data.frame.columns and len(data.frame) == len(frame)
    verdict, quality = _verdict(data.frame, frame)
    assert [(p.column, p.check) for p in quality] == [("temperature_c", "missing")]
    assert SEVERITY[verdict.verdict] >= SEVERITY["warning"]
    assert "temperature_c" in verdict.ordered()[0]


def test_a_log_file_cut_off_mid_write_is_left_out_with_a_note_and_the_rest_is_read(tmp_path):
    frame = _data()
    first, second = frame.iloc[: len(frame) // 2], frame.iloc[len(frame) // 2:]
    _log_file(tmp_path / "log", first, 1)
    cut = _log_file(tmp_path / "log", second, 2)
    content = cut.read_bytes()
    cut.write_bytes(content[: len(content) // 2])
    data = currents.read_inference_log(tmp_path / "log", CONTRACT, VERSION)
    assert len(data.frame) == len(first)
    assert len(data.notes) == 1 and cut.name in data.notes[0] and "left out" in data.notes[0]
    verdict, _ = _verdict(data.frame, frame, notes=data.notes)
    assert SEVERITY[verdict.verdict] >= SEVERITY["warning"] and data.notes[0] in verdict.reasons


def test_a_file_still_being_written_is_left_out_with_a_note(tmp_path):
    frame = _data()
    written = _log_file(tmp_path / "log", frame.iloc[:100], 1)
    hidden = _log_file(tmp_path / "log", frame.iloc[100:], 2)
    hidden.replace(hidden.with_name(f".{hidden.name}.partial"))
    data = currents.read_inference_log(tmp_path / "log", CONTRACT, VERSION)
    assert len(data.frame) == 100 and written.exists()
    assert len(data.notes) == 1 and "still being written" in data.notes[0]


def test_no_log_folder_is_refused(tmp_path):
    with pytest.raises(MonitoringError, match="no inference log at"):
        currents.read_inference_log(tmp_path / "nowhere", CONTRACT, VERSION)


# --- the reference ----------------------------------------------------------------------------------------------


def test_a_bundle_without_a_reference_is_refused_naming_the_file(tmp_path):
    with pytest.raises(MonitoringError, match=REFERENCE_FILE.replace(".", r"\.")):
        read_reference(tmp_path, "b-1", CONTRACT)


def _reference_file(root, frame: pd.DataFrame):
    (root / "reference").mkdir(parents=True)
    frame.assign(prediction=frame[TARGET]).to_parquet(root / REFERENCE_FILE, index=False)


def test_a_reference_without_a_time_zone_is_refused(tmp_path):
    frame = _data()
    _reference_file(tmp_path, frame.assign(**{TIME: frame[TIME].dt.tz_localize(None)}))
    with pytest.raises(MonitoringError, match="without a time zone"):
        read_reference(tmp_path, "b-1", CONTRACT)


def test_a_reference_in_utc_is_read_on_the_contracts_clock(tmp_path):
    frame = _data()
    _reference_file(tmp_path, frame.assign(**{TIME: frame[TIME].dt.tz_convert("UTC")}))
    read = read_reference(tmp_path, "b-1", CONTRACT)
    assert str(read[TIME].dt.tz) == ZONE and read[TIME].equals(frame[TIME])


# --- another clock ----------------------------------------------------------------------------------------------


def _utc_csv(frame: pd.DataFrame, path):
    frame.assign(**{TIME: frame[TIME].dt.tz_convert("UTC")}).to_csv(path, index=False)
    assert "+00:00" in path.read_text().splitlines()[1]
    return path


def test_a_file_on_utc_offsets_gives_the_same_rows_and_drift_decisions_as_local_time(tmp_path):
    reference, frame = _data(start="2024-01-01"), _data()
    frame = frame.assign(prediction=frame[TARGET])
    local = tmp_path / "local.csv"
    frame.to_csv(local, index=False)
    utc = _utc_csv(frame, tmp_path / "utc.csv")
    period = currents.parse_period("2025-01-10", "2025-01-20T12:00:00+00:00", ZONE)
    a = currents.read_current_file(local, CONTRACT, period).frame
    b = currents.read_current_file(utc, CONTRACT, period).frame
    assert len(a) > 0 and a[TIME].min() == pd.Timestamp("2025-01-10", tz=ZONE)
    assert a[TIME].max() == pd.Timestamp("2025-01-20T13:00:00", tz=ZONE)
    pd.testing.assert_frame_equal(a, b)
    kinds = {"temperature_c": "numerical", "price_per_hour": "numerical", "car_park_kind": "categorical"}
    thresholds = dict.fromkeys(kinds, 0.1)
    decided = [detect_drift(reference, rows, kinds, thresholds, 1_000, [], 0, 1e-3) for rows in (a, b)]
    assert [c.drifted for c in decided[0].columns] == [c.drifted for c in decided[1].columns]
    assert [c.distance for c in decided[0].columns] == [c.distance for c in decided[1].columns]


def test_outcomes_on_utc_offsets_join_local_log_rows_as_instants(tmp_path):
    frame = _data()
    _log_file(tmp_path / "log", frame, 1)
    data = currents.read_inference_log(tmp_path / "log", CONTRACT, VERSION)
    _utc_csv(frame[[ENTITY, TIME, TARGET]], tmp_path / "outcomes.csv")
    joined = currents.join_outcomes(data, tmp_path / "outcomes.csv", CONTRACT)
    assert joined.outcomes == len(frame)
    expected = frame.set_index([ENTITY, TIME])[TARGET]
    got = joined.frame.assign(**{ENTITY: joined.frame[ENTITY].astype(str)}).set_index([ENTITY, TIME])[TARGET]
    assert got.to_numpy() == pytest.approx(expected.loc[got.index].to_numpy())


def test_an_outcomes_file_holding_a_key_twice_is_refused(tmp_path):
    frame = _data()
    _log_file(tmp_path / "log", frame, 1)
    data = currents.read_inference_log(tmp_path / "log", CONTRACT, VERSION)
    outcomes = frame[[ENTITY, TIME, TARGET]]
    pd.concat([outcomes, outcomes.iloc[[5]]]).to_csv(tmp_path / "outcomes.csv", index=False)
    with pytest.raises((DataError, MonitoringError)) as refused:
        currents.join_outcomes(data, tmp_path / "outcomes.csv", CONTRACT)
    assert "outcomes.csv" in str(refused.value)


# --- what the reference never saw -------------------------------------------------------------------------------


@pytest.mark.parametrize("share, level", [(0.05, "warning"), (0.002, "ok")])
def test_a_category_the_reference_never_saw_is_named_and_above_max_new_share_warns(share, level):
    frame = _data()
    reference = frame.loc[frame["car_park_kind"] != "hospital"]
    hospitals = frame.loc[frame["car_park_kind"] == "hospital"]
    count = max(1, int(share * len(reference) / (1 - share)))
    current = pd.concat([reference, hospitals.iloc[:count]], ignore_index=True)
    verdict, quality = _verdict(current, reference)
    new = [p for p in quality if p.check == "new_categories" and p.column == "car_park_kind"]
    assert len(new) == 1 and "'hospital'" in new[0].detail and new[0].rows == count
    assert verdict.verdict == level, verdict.ordered()
    assert any("'hospital'" in reason for reason in verdict.reasons)


# --- found by a newcomer ------------------------------------------------------------------------------------------


def test_an_outcomes_file_matching_no_row_is_named_and_never_a_silent_ok(tmp_path):
    frame = _data()
    _log_file(tmp_path / "log", frame, 1)
    current = currents.read_inference_log(tmp_path / "log", CONTRACT, VERSION)
    elsewhere = frame.assign(timestamp=frame[TIME] - pd.DateOffset(years=2))
    outcomes = tmp_path / "outcomes.csv"
    elsewhere.to_csv(outcomes, index=False)
    joined = currents.join_outcomes(current, outcomes, CONTRACT)
    assert joined.outcomes == 0
    assert any(f"outcomes file {outcomes}: none of its {len(frame):,} rows match" in n for n in joined.notes)
    verdict, _ = _verdict(joined.frame, frame, joined.notes)
    assert verdict.verdict == "warning"


def test_predictions_outside_the_targets_contract_range_are_a_quality_problem():
    frame = _data().assign(prediction=7.0)
    problems = check_quality(frame, frame, CONTRACT, QUALITY_COLUMNS, SETTINGS.max_null_increase,
                             prediction="prediction")
    found = [p for p in problems if p.column == "prediction"]
    assert len(found) == 1 and found[0].rows == len(frame)
    assert "outside the target's range in the contract, in [0, 1] (from 7 to 7)" in found[0].detail


def test_counting_the_log_before_a_run_agrees_with_reading_it(tmp_path):
    frame = _data()
    _log_file(tmp_path / "log", frame.iloc[:3000], 1)
    _log_file(tmp_path / "log", frame.iloc[3000:], 2)
    _log_file(tmp_path / "log", frame.iloc[:100], 3, version="2")
    period = currents.parse_period("2025-01-10", "2025-01-12", ZONE)
    after = "2025-02-01T12:30:00+00:00"
    for kwargs in ({}, {"period": period}, {"after": after}, {"after": after, "period": period}):
        read = currents.read_inference_log(tmp_path / "log", CONTRACT, VERSION, **kwargs)
        assert currents.count_log_rows(tmp_path / "log", CONTRACT, VERSION, **kwargs) == len(read.frame), kwargs
    assert currents.count_log_rows(tmp_path / "nowhere", CONTRACT, VERSION) == 0
