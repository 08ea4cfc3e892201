"""Feature preparation that lives inside the fitted model.

The model takes the contract's feature columns as they are in the data and
does all preprocessing itself (calendar features, one-hot encoding), so the
industry partner serves exactly what the university trained: no
re-implementation of feature code on the other side of the boundary.

Reading a time column (shared with ``baseline.SeasonalProfileBaseline``)
------------------------------------------------------------------------
The project's estimators are fed pandas DataFrames, and name their columns
(``time_column="timestamp"``). They also follow scikit-learn's estimator
API (``sklearn.utils.estimator_checks``), whose checks feed plain numeric
arrays, so a column may instead be given by its position (an ``int``):

* DataFrame input: a ``str`` column is looked up by name (the frame may hold
  other columns, in any order and of any dtype; only the named ones are
  read, as always); an ``int`` is a position (``DataFrame.iloc``), and then
  the frame must have the columns seen in ``fit``.
* Any other input (array, list of lists) is validated by
  ``sklearn.utils.validation.validate_data``: it must be numeric, finite and
  2-D, and columns can only be given by position; a name raises
  ``ValueError``.
* A time column holding datetimes or date strings is parsed by
  ``pandas.to_datetime``; a numeric one is read as POSIX seconds (UTC), so
  0.0 is 1970-01-01 00:00 (a Thursday). A missing or infinite time raises
  ``ValueError``.
* Calendar features are local wall time: the contract's rules make the time
  column aware on the contract's clock (``datetime64[ns, Europe/Stockholm]``),
  and ``.dt.hour`` of an aware series is its local hour (both autumn 02:00
  instants are hour 2; the model sees what a person at the car park sees).
  Naive times are read as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils import Tags
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, column_or_1d, validate_data

from collabops.data.contract import DataContract

CALENDAR_FEATURES = ("hour", "day_of_week", "month", "day_of_year", "is_weekend")

Column = str | int


def check_column_parameter(owner: BaseEstimator, parameter: str, column: Any) -> None:
    """``ValueError`` unless ``column`` is a name (``str``) or a non-negative position (``int``, not ``bool``)."""
    ok = isinstance(column, str) or (isinstance(column, (int, np.integer)) and not isinstance(column, bool)
                                     and column >= 0)
    if not ok:
        raise ValueError(f"{type(owner).__name__}: {parameter} must be a column name (str) or a non-negative "
                         f"column position (int), got {column!r}")


def column_position(owner: BaseEstimator, parameter: str, column: Column, X: Any) -> int:
    """Position of ``column`` in ``X`` (a DataFrame or a validated 2-D array).

    Raises ``ValueError`` if the DataFrame lacks the column or has it twice,
    or if a position is out of range.
    """
    name = type(owner).__name__
    if isinstance(column, str):
        if column not in X.columns:
            raise ValueError(f"{name}: X has no column {column!r} ({parameter}); it has {list(X.columns)}")
        position = X.columns.get_loc(column)
        if not isinstance(position, (int, np.integer)):
            raise ValueError(f"{name}: X has more than one column named {column!r} ({parameter})")
        return int(position)
    if int(column) >= X.shape[1]:
        raise ValueError(f"{name}: {parameter}={column} is not a column of X, which has {X.shape[1]} feature(s)")
    return int(column)


def read_input(owner: BaseEstimator, X: Any, y: Any = "no_validation", *, reset: bool,
               columns: dict[str, Column]) -> tuple[Any, Any, dict[str, int]]:
    """Validate ``X`` (and ``y`` if given) as the module docstring says.

    ``columns`` maps the owner's parameter names to their values
    (``{"time_column": "timestamp"}``). Returns ``X`` (the DataFrame itself,
    or a numeric ndarray of shape ``(n_samples, n_features)``), ``y`` (a
    float array of shape ``(n_samples,)``, or ``"no_validation"`` if not
    given) and each parameter's column position in ``X``. With
    ``reset=True`` (``fit``) it sets ``n_features_in_`` and, for a
    DataFrame with string column names, ``feature_names_in_``, through
    ``sklearn.utils.validation.validate_data``. Raises ``ValueError`` for a
    bad column parameter, a missing column, empty, non-numeric-array,
    non-finite-array or inconsistent input (messages as scikit-learn's).
    """
    for parameter, column in columns.items():
        check_column_parameter(owner, parameter, column)
    has_y = not (isinstance(y, str) and y == "no_validation")
    if isinstance(X, pd.DataFrame):
        if reset or any(not isinstance(c, str) for c in columns.values()):
            # Sets (fit) or checks the columns seen in fit; a mixed-dtype frame is not converted to an array.
            # With names only, later frames are read by name and may differ in their other columns.
            validate_data(owner, X, y, reset=reset, skip_check_array=True)
        if X.shape[0] == 0:
            raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required by "
                             f"{type(owner).__name__}.")
        if has_y:
            y = column_or_1d(check_array(y, ensure_2d=False, dtype="numeric", input_name="y", estimator=owner),
                             warn=True)
            check_consistent_length(X, y)
    else:
        named = {p: c for p, c in columns.items() if isinstance(c, str)}
        if named:
            parameter, column = next(iter(named.items()))
            raise ValueError(f"{type(owner).__name__}: {parameter}={column!r} names a column, but X "
                             f"({type(X).__name__}) has no column names; pass a pandas DataFrame, or give the "
                             "column's position as an int")
        check: dict[str, Any] = {"dtype": "numeric", "reset": reset}
        if reset:  # the positions must exist; later calls are held to n_features_in_ instead
            check["ensure_min_features"] = max(int(c) for c in columns.values()) + 1
        if has_y:
            X, y = validate_data(owner, X, y, y_numeric=True, **check)
        else:
            X = validate_data(owner, X, **check)
    if has_y:
        y = np.asarray(y, dtype=float)
    positions = {p: column_position(owner, p, c, X) for p, c in columns.items()}
    return X, y, positions


def column_values(X: pd.DataFrame | np.ndarray, position: int) -> pd.Series | np.ndarray:
    """The column at ``position``: a ``Series`` of a DataFrame, a 1-D array of an array."""
    return X.iloc[:, position] if isinstance(X, pd.DataFrame) else X[:, position]


def to_moments(values: ArrayLike | pd.Series, owner: BaseEstimator, column: Column) -> pd.Series:
    """The time column's values as a datetime ``Series`` (``.dt`` accessor), same length and order.

    Datetimes and strings go through ``pandas.to_datetime``; numbers are
    POSIX seconds. Raises ``ValueError`` (mentioning NaN) for a missing time
    or an infinite number, and ``pandas.to_datetime``'s own ``ValueError``
    for a string it cannot parse or a number of seconds beyond pandas'
    range (years 1677-2262).
    """
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    where = f"{type(owner).__name__}: the time column {column!r}"
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        seconds = series.to_numpy(dtype=float, na_value=np.nan)
        if not np.isfinite(seconds).all():
            raise ValueError(f"Input X contains NaN or infinity: {where} must hold a finite time in every row")
        moments = pd.Series(pd.to_datetime(seconds, unit="s"))
    elif pd.api.types.is_datetime64_any_dtype(series.dtype):
        moments = series
    else:
        moments = pd.to_datetime(series)
    if moments.isna().any():
        raise ValueError(f"Input X contains NaN (a missing time): {where} must hold a time in every row")
    return moments


def _nullable_integers(series: pd.Series) -> bool:
    """Whether ``series`` is one of pandas' nullable integer dtypes (``Int64`` and kin)."""
    return isinstance(series.dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_integer_dtype(series.dtype)


class CalendarFeatures(TransformerMixin, BaseEstimator):
    """Replace the time column by hour, weekday, month, day of year and weekend flag.

    ``time_column``: the column's name (DataFrame input) or position (any
    input); see the module docstring for how it is read. ``transform`` of a
    DataFrame with ``n`` rows and ``k`` columns returns a DataFrame of ``n``
    rows: the other ``k - 1`` columns unchanged, in their order (except that
    pandas' nullable integer columns, ``Int64``, become ``float64`` with NaN
    for null: a nullable int column of the contract then trains, as
    scikit-learn cannot hold ``pandas.NA`` in a float matrix), then the five
    ``CALENDAR_FEATURES`` as ``int16`` of local wall time (hour 0-23,
    day_of_week 0 = Monday, month 1-12, day_of_year 1-366, is_weekend 0/1).
    An array input
    gives an array of shape ``(n, k - 1 + 5)`` in the same column order
    (NumPy's common dtype of the input and ``int16``).
    """

    def __init__(self, time_column: Column = "timestamp") -> None:
        self.time_column = time_column

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # Arrays are validated as numeric and finite (check_array), so NaN is refused there; a DataFrame's
        # other columns pass through untouched (NaN included), which this array-level tag does not describe.
        tags.input_tags.allow_nan = False
        # Strings (dates) are read from a DataFrame's time column only; an array of strings is refused.
        tags.input_tags.string = False
        return tags

    def fit(self, X: pd.DataFrame | ArrayLike, y: Any = None) -> CalendarFeatures:
        """Remember the input's columns and check its time column can be read. Returns ``self``.

        Raises ``ValueError`` as ``read_input`` and ``to_moments`` do.
        """
        X, _, positions = read_input(self, X, reset=True, columns={"time_column": self.time_column})
        to_moments(column_values(X, positions["time_column"]), self, self.time_column)
        return self

    def transform(self, X: pd.DataFrame | ArrayLike) -> pd.DataFrame | np.ndarray:
        """Calendar features of ``X`` (shapes in the class docstring).

        Raises ``NotFittedError`` before ``fit``, ``ValueError`` as
        ``read_input`` and ``to_moments`` do.
        """
        check_is_fitted(self)
        X, _, positions = read_input(self, X, reset=False, columns={"time_column": self.time_column})
        position = positions["time_column"]
        moments = to_moments(column_values(X, position), self, self.time_column)
        calendar = {
            "hour": moments.dt.hour.to_numpy(dtype="int16"),
            "day_of_week": moments.dt.dayofweek.to_numpy(dtype="int16"),
            "month": moments.dt.month.to_numpy(dtype="int16"),
            "day_of_year": moments.dt.dayofyear.to_numpy(dtype="int16"),
            "is_weekend": (moments.dt.dayofweek >= 5).to_numpy(dtype="int16"),
        }
        if isinstance(X, pd.DataFrame):
            out = X.drop(columns=[X.columns[position]]).copy()
            for name in out.columns[[_nullable_integers(out[c]) for c in out.columns]]:
                out[name] = out[name].astype("float64")  # pandas' NA as NaN, as every estimator reads numbers
            for name in CALENDAR_FEATURES:
                out[name] = calendar[name]
            return out
        kept = np.delete(X, position, axis=1)
        return np.column_stack([kept] + [calendar[name] for name in CALENDAR_FEATURES])

    def get_feature_names_out(self, input_features: ArrayLike | None = None) -> np.ndarray:
        """Names of ``transform``'s output columns: the input's without the time column, then the calendar's.

        Input names are ``feature_names_in_``, or ``x0, x1, ...`` when fitted
        on an array (scikit-learn's convention). ``input_features``, if given,
        must have ``n_features_in_`` entries and equal ``feature_names_in_``
        when that exists. Raises ``ValueError`` for those and for a time
        column that is not among the names, ``NotFittedError`` before ``fit``.
        """
        check_is_fitted(self)
        fitted = getattr(self, "feature_names_in_", None)
        # Models saved before n_features_in_ was recorded have feature_names_in_ only.
        n_features = int(getattr(self, "n_features_in_", len(fitted) if fitted is not None else 0))
        if input_features is None:
            names = fitted if fitted is not None else np.asarray([f"x{i}" for i in range(n_features)], dtype=object)
        else:
            names = np.asarray(input_features, dtype=object)
            if len(names) != n_features:
                raise ValueError(f"input_features should have length equal to number of features ({n_features}), "
                                 f"got {len(names)}")
            if fitted is not None and not np.array_equal(fitted, names):
                raise ValueError("input_features is not equal to feature_names_in_")
        if isinstance(self.time_column, str):
            if self.time_column not in list(names):
                raise ValueError(f"CalendarFeatures: the time column {self.time_column!r} is not among the input "
                                 f"features {list(names)}")
            position = list(names).index(self.time_column)
        else:
            position = int(self.time_column)
        kept = [str(c) for i, c in enumerate(names) if i != position]
        return np.asarray(kept + list(CALENDAR_FEATURES), dtype=object)


def categorical_columns(contract: DataContract) -> list[str]:
    """Feature columns that are one-hot encoded: strings, categories and flags."""
    return [
        name for name in contract.feature_columns
        if contract.column(name).type in ("string", "category", "bool")
    ]


def build_model(contract: DataContract, estimator: BaseEstimator) -> Pipeline:
    """A scikit-learn ``Pipeline``: calendar features -> one-hot -> ``estimator``.

    Steps are named ``calendar``, ``encode`` and ``estimator``; grid-search
    parameters of the estimator are therefore ``estimator__<name>``.
    """
    encode = ColumnTransformer(
        [
            (
                "categories",
                OneHotEncoder(handle_unknown="ignore", drop="if_binary", sparse_output=False),
                categorical_columns(contract),
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    return Pipeline(
        [
            ("calendar", CalendarFeatures(time_column=contract.time_column)),
            ("encode", encode),
            ("estimator", estimator),
        ]
    )
