"""The project's own estimators follow scikit-learn's estimator API.

``parametrize_with_checks`` runs scikit-learn's generic checks. They feed
plain numeric arrays, so the instances checked give their columns by
position (``time_column=0``, ``entity_column=1``): a numeric time column is
read as POSIX seconds (``collabops.training.features``). In the project the
same classes read DataFrames by column name; the tests after the checks
cover that.

Checks expected to fail: none (``EXPECTED_FAILED_CHECKS`` is empty, and
``xfail_strict`` makes a listed check that passes fail the run).

Checks scikit-learn skips by itself, and why:

* ``check_array_api_input`` (once per estimator): scikit-learn skips it
  unless ``SCIPY_ARRAY_API=1`` is set before SciPy is first imported, which
  a pytest process cannot arrange per test; ``test_array_api_check_passes``
  runs it in a subprocess with the variable set.

Checks that are not part of ``parametrize_with_checks`` but matter here
(DataFrame input, feature names) run in ``test_dataframe_and_feature_name_checks``.
Left out of those, with the reason:

* ``check_set_output_transform_pandas``, ``check_global_output_transform_pandas``
  (CalendarFeatures): they build the expected frame from the default
  ``transform`` output of a DataFrame, assuming it is an array; by design
  CalendarFeatures returns a DataFrame for a DataFrame (the ColumnTransformer
  after it selects columns by name, and models already saved rely on it).
* ``check_param_validation``: needs scikit-learn's private
  ``_parameter_constraints``; the column parameters are validated in ``fit``
  instead (``test_bad_column_parameters_are_refused_in_fit``).
* Transformer-only checks on SeasonalProfileBaseline: it is not a transformer.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from collabops.training.baseline import SeasonalProfileBaseline
from collabops.training.features import CALENDAR_FEATURES, CalendarFeatures

ROOT = Path(__file__).resolve().parents[2]
ESTIMATORS = [SeasonalProfileBaseline(time_column=0, entity_column=1), CalendarFeatures(time_column=0)]

# {check name: reason} per estimator class; empty because every check passes.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {"SeasonalProfileBaseline": {}, "CalendarFeatures": {}}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda e: EXPECTED_FAILED_CHECKS[type(e).__name__],
                         xfail_strict=True)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


EXTRA_CHECKS = {
    "SeasonalProfileBaseline": ["check_dataframe_column_names_consistency", "check_inplace_ensure_writeable"],
    "CalendarFeatures": ["check_dataframe_column_names_consistency", "check_inplace_ensure_writeable",
                         "check_transformer_get_feature_names_out", "check_transformer_get_feature_names_out_pandas",
                         "check_get_feature_names_out_error", "check_set_output_transform"],
}


@pytest.mark.parametrize("estimator, check", [(e, c) for e in ESTIMATORS for c in EXTRA_CHECKS[type(e).__name__]],
                         ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_dataframe_and_feature_name_checks(estimator, check):
    getattr(estimator_checks, check)(type(estimator).__name__, clone(estimator))


def test_array_api_check_passes():
    code = (
        "from sklearn.utils.estimator_checks import check_array_api_input\n"
        "from collabops.training.baseline import SeasonalProfileBaseline\n"
        "from collabops.training.features import CalendarFeatures\n"
        "for e in (SeasonalProfileBaseline(time_column=0, entity_column=1), CalendarFeatures(time_column=0)):\n"
        "    check_array_api_input(type(e).__name__, e, array_namespace='numpy', expect_only_array_outputs=False)\n"
        "print('checked')\n"
    )
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "checked"


def _frame(n: int = 6) -> pd.DataFrame:
    """Two car parks, hourly from Friday 2024-03-01 22:00, with the columns the contract's data has."""
    times = pd.date_range("2024-03-01 22:00", periods=n, freq="h")
    return pd.DataFrame({"car_park_id": ["A", "B"] * (n // 2), "capacity": 100, "timestamp": times,
                         "rain_mm": [np.nan, 0.5] * (n // 2)})


def test_calendar_features_of_a_frame_by_name():
    frame = _frame()
    calendar = CalendarFeatures().fit(frame)
    out = calendar.transform(frame)
    assert list(out.columns) == ["car_park_id", "capacity", "rain_mm", *CALENDAR_FEATURES]
    assert list(calendar.get_feature_names_out()) == list(out.columns)
    assert list(out["hour"]) == [22, 23, 0, 1, 2, 3] and list(out["day_of_week"]) == [4, 4, 5, 5, 5, 5]
    assert list(out["is_weekend"]) == [0, 0, 1, 1, 1, 1] and list(out["day_of_year"]) == [61, 61, 62, 62, 62, 62]
    assert (out.dtypes[list(CALENDAR_FEATURES)] == "int16").all()
    assert out["rain_mm"].isna().sum() == 3  # other columns pass through untouched, missing values included
    # Read by name: other columns, in another order, are fine.
    assert out.equals(calendar.transform(frame[["timestamp", "rain_mm", "capacity", "car_park_id"]])
                      [out.columns])


def test_numeric_times_are_posix_seconds():
    seconds = pd.Timestamp("2024-03-02 05:00").timestamp()  # a Saturday
    X = np.array([[seconds, 7.0]])
    out = CalendarFeatures(time_column=0).fit(X).transform(X)
    np.testing.assert_array_equal(out, [[7.0, 5, 5, 3, 62, 1]])
    baseline = SeasonalProfileBaseline(time_column=0, entity_column=1).fit(X, [0.4])
    assert np.nanargmax(baseline.profile_[0]) == 5 * 24 + 5


def test_a_column_name_needs_a_frame_and_missing_times_are_refused():
    with pytest.raises(ValueError, match="time_column='timestamp' names a column, but X \\(ndarray\\) has no column"):
        CalendarFeatures().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="X has no column 'timestamp'"):
        CalendarFeatures().fit(_frame().drop(columns="timestamp"))
    frame = _frame().astype({"timestamp": object})
    frame.loc[1, "timestamp"] = None
    with pytest.raises(ValueError, match=r"NaN \(a missing time\).*'timestamp'"):
        SeasonalProfileBaseline().fit(frame, np.ones(len(frame)))


@pytest.mark.parametrize("estimator", [CalendarFeatures(time_column=-1), CalendarFeatures(time_column=True),
                                       SeasonalProfileBaseline(entity_column=1.5)], ids=repr)
def test_bad_column_parameters_are_refused_in_fit(estimator):
    with pytest.raises(ValueError, match="must be a column name \\(str\\) or a non-negative column position"):
        estimator.fit(_frame(), np.ones(6))


def test_baseline_profile_from_a_frame():
    frame = _frame(4)  # A at 22:00 and 00:00, B at 23:00 and 01:00
    baseline = SeasonalProfileBaseline(entity_column="car_park_id").fit(frame, [0.1, 0.2, 0.3, 0.4])
    assert list(baseline.entities_) == ["A", "B"] and baseline.n_features_in_ == 4
    later = frame.assign(timestamp=frame["timestamp"] + pd.Timedelta(weeks=1))
    np.testing.assert_allclose(baseline.predict(later), [0.1, 0.2, 0.3, 0.4])
    unseen_hour = frame.assign(timestamp=frame["timestamp"] + pd.Timedelta(hours=5))
    np.testing.assert_allclose(baseline.predict(unseen_hour), [0.2, 0.3, 0.2, 0.3])  # each car park's mean
    assert baseline.global_mean_ == pytest.approx(0.25)


def test_a_float32_entity_id_is_the_same_entity_as_its_float64_value():
    """As in check_regressors_train: fitted on a list (float32 values widened to float), predicted on float32."""
    X32 = np.array([[0.0, 0.1], [3600.0, 0.2]], dtype=np.float32)
    baseline = SeasonalProfileBaseline(time_column=0, entity_column=1).fit(X32.tolist(), [1.0, 2.0])
    np.testing.assert_allclose(baseline.predict(X32), [1.0, 2.0])


def test_predict_before_fit_and_a_fitted_model_survive_pickling():
    with pytest.raises(NotFittedError):
        SeasonalProfileBaseline().predict(_frame())
    with pytest.raises(NotFittedError):
        CalendarFeatures().transform(_frame())
    calendar = pickle.loads(pickle.dumps(CalendarFeatures().fit(_frame())))
    assert calendar.transform(_frame()).shape == (6, 8)


def test_a_calendar_step_saved_before_n_features_in_was_recorded_still_names_its_output():
    """Models fitted by the earlier CalendarFeatures have feature_names_in_ only (compiled serving reads the names)."""
    old = CalendarFeatures()
    old.feature_names_in_ = np.asarray(["timestamp", "car_park_id"], dtype=object)
    assert list(old.get_feature_names_out()) == ["car_park_id", *CALENDAR_FEATURES]
    assert list(old.transform(_frame()[["timestamp", "car_park_id"]]).columns) == ["car_park_id", *CALENDAR_FEATURES]
