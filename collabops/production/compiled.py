"""A compiled inference path: the fitted pipeline's preprocessing as plain Python, checked against scikit-learn.

Why: for a one-record request the service spent ~13 ms building a pandas
frame and validating it with pandera, and ~8 ms in the pipeline's
``CalendarFeatures`` and ``ColumnTransformer``, against ~1 ms in the trees.
This module removes the first two costs without changing any answer:

* request records are checked by the contract's column rules, one value at a
  time (:class:`collabops.data.rules.RecordValidator`, which needs no model):
  the same rules as the pandera schema of :meth:`DataContract.validate` and
  the chunk validator of batch scoring, so the fast path accepts exactly what
  those accept; refused records raise :class:`RecordError` (also importable
  here as ``RecordRejected``) naming the record and field.
* :class:`CompiledPipeline` turns the fitted
  ``CalendarFeatures -> ColumnTransformer(OneHotEncoder, passthrough) -> estimator``
  pipeline into index tables (one-hot positions from the encoder's fitted
  ``categories_``/``drop_idx_``, passthrough columns in the fitted order) and
  builds the float matrix the final estimator was fitted on; the estimator
  itself still predicts.
* :func:`load_compiled` compiles and then checks the compiled predictions
  against the pipeline's own ``predict`` on the bundle's reference sample
  (plus copies with nulls and unknown categories); if a model is of another
  shape or the check fails, it says why and the service uses scikit-learn.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from collabops.data.rules import RecordError, RecordValidator

if TYPE_CHECKING:
    from collabops.data.contract import DataContract

TOLERANCE = 1e-9
"""Largest absolute difference to the pipeline's ``predict`` the load-time check accepts."""

CHECK_ROWS = 1000
"""Reference rows used by the load-time check (plus as many modified copies), to bound start-up time."""

TREE_ROWS = 16
"""Requests of up to this many rows walk the trees with numpy; larger ones call the estimator's ``predict``."""

UNKNOWN_PROBE = "__collabops_unknown_category__"

RecordRejected = RecordError
"""The per-record validator's refusal, under its former name (``serving`` catches it)."""


class NotCompilable(ValueError):
    """The model is not of the shape the compiled path reproduces."""


# ----------------------------------------------------------------------------- the compiled pipeline

def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class _OneHot:
    """One encoded input column: value -> output position, and where a null goes (``None``: nowhere)."""

    source: int
    positions: dict[Any, int]
    null_position: int | None


@dataclass(frozen=True)
class CompiledPipeline:
    """The preprocessing of a fitted pipeline as index tables, and its final estimator."""

    features: tuple[str, ...]
    width: int
    time_source: int
    calendar: tuple[tuple[str, int], ...]  # (calendar feature, output position)
    onehot: tuple[_OneHot, ...]
    passthrough: tuple[tuple[int, int], ...]  # (input position, output position)
    estimator: Any
    trees: CompiledTrees | None = None
    tree_rows: int = 0

    def matrix(self, rows: list[tuple[Any, ...]]) -> np.ndarray:
        """The float matrix the final estimator takes, from rows in ``features`` order."""
        n = len(rows)
        X = np.zeros((n, self.width), dtype=np.float64)
        columns = list(zip(*rows, strict=True))
        moments = columns[self.time_source]
        for name, position in self.calendar:
            X[:, position] = _calendar_values(name, moments)
        for encoded in self.onehot:
            lookup, null = encoded.positions.get, encoded.null_position
            hits = [(i, null if value is None else lookup(value)) for i, value in enumerate(columns[encoded.source])]
            hits = [(i, j) for i, j in hits if j is not None]
            if hits:
                rows_hit, cols_hit = zip(*hits, strict=True)
                X[list(rows_hit), list(cols_hit)] = 1.0
        for source, position in self.passthrough:
            X[:, position] = np.array(columns[source], dtype=np.float64)
        return X

    def predict(self, rows: list[tuple[Any, ...]]) -> np.ndarray:
        X = self.matrix(rows)
        if self.trees is not None and len(rows) <= self.tree_rows and not np.isinf(X).any():
            return self.trees.predict(X)
        return np.asarray(self.estimator.predict(X))  # also raises for infinite values, as the pipeline does


class CompiledTrees:
    """A fitted HistGradientBoostingRegressor's trees as flat arrays, walked with numpy for a few rows at once.

    Why: ``predict`` visits its 200 trees one call (and one OpenMP region) at
    a time, ~1.3 ms for one row; walking all trees together takes ~0.15 ms.
    For many rows the per-tree loop is faster, so the pipeline uses this only
    up to ``TREE_ROWS`` rows. The walk follows scikit-learn's rule (NaN goes
    where the split sends missing values, otherwise ``x <= threshold`` goes
    left) and sums leaf values in tree order from the baseline, as
    ``_raw_predict`` does, so results are the same bit for bit; the load-time
    check verifies it for every model.
    """

    def __init__(self, estimator: Any) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor

        if type(estimator) is not HistGradientBoostingRegressor:
            raise NotCompilable(f"the final step is a {type(estimator).__name__}, not a HistGradientBoostingRegressor")
        try:
            predictors = [iteration[0] for iteration in estimator._predictors]
            if estimator.n_trees_per_iteration_ != 1 or any(len(it) != 1 for it in estimator._predictors):
                raise NotCompilable("more than one tree per iteration")
            nodes = [predictor.nodes for predictor in predictors]
            if any(n["is_categorical"].any() for n in nodes):
                raise NotCompilable("the trees split on categorical features")
            baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64)
            if baseline.size != 1:
                raise NotCompilable("the baseline prediction is not a single number")
            self._inverse = estimator._loss.link.inverse
            self._baseline = float(baseline.ravel()[0])
        except (AttributeError, KeyError, ValueError, TypeError) as exc:
            raise NotCompilable(f"cannot read the fitted trees: {type(exc).__name__}: {exc}") from None
        sizes = [len(n) for n in nodes]
        offsets = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
        flat = np.concatenate(nodes)
        shift = np.repeat(offsets, sizes)
        leaf = flat["is_leaf"].astype(bool)
        here = np.arange(len(flat), dtype=np.intp)
        left = np.where(leaf, here, flat["left"].astype(np.intp) + shift)
        right = np.where(leaf, here, flat["right"].astype(np.intp) + shift)
        self._children = np.stack([left, right], axis=1)  # a leaf points to itself on both sides
        self._feature = np.where(leaf, 0, flat["feature_idx"]).astype(np.intp)
        self._threshold = flat["num_threshold"].astype(np.float64)
        self._missing_left = flat["missing_go_to_left"].astype(bool)
        self._value = flat["value"].astype(np.float64)
        self._roots = offsets
        self._depth = int(flat["depth"].max()) if len(flat) else 0

    def predict(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        node = np.broadcast_to(self._roots, (n, len(self._roots)))
        rows = np.arange(n)[:, None]
        for _ in range(self._depth):
            x = X[rows, self._feature[node]]
            go_left = (x <= self._threshold[node]) | (self._missing_left[node] & np.isnan(x))
            node = self._children[node, (~go_left).view(np.uint8)]
        total = np.empty((n, len(self._roots) + 1), dtype=np.float64)
        total[:, 0] = self._baseline
        total[:, 1:] = self._value[node]
        return np.asarray(self._inverse(np.cumsum(total, axis=1)[:, -1]))


def _calendar_values(name: str, moments: tuple[dt.datetime, ...]) -> list[int]:
    if name == "hour":
        return [m.hour for m in moments]
    if name == "day_of_week":
        return [m.weekday() for m in moments]
    if name == "month":
        return [m.month for m in moments]
    if name == "day_of_year":
        return [m.timetuple().tm_yday for m in moments]
    if name == "is_weekend":
        return [int(m.weekday() >= 5) for m in moments]
    raise NotCompilable(f"unknown calendar feature '{name}'")


def _column_names(transformer: Any, columns: Any, names_in: list[str]) -> list[str]:
    """A ColumnTransformer column selection as names."""
    if isinstance(columns, str):
        return [columns]
    selected = list(np.asarray(columns).ravel()) if not isinstance(columns, slice) else names_in[columns]
    if selected and all(isinstance(c, (bool, np.bool_)) for c in selected):
        return [n for n, keep in zip(names_in, selected, strict=True) if keep]
    if selected and all(isinstance(c, (int, np.integer)) for c in selected):
        return [names_in[int(c)] for c in selected]
    if all(isinstance(c, str) for c in selected):
        return [str(c) for c in selected]
    raise NotCompilable(f"cannot read the column selection {columns!r} of {type(transformer).__name__}")


def compile_pipeline(model: Any, contract: DataContract, features: list[str]) -> CompiledPipeline:
    """Index tables for ``CalendarFeatures -> ColumnTransformer -> estimator``, or ``NotCompilable`` saying why."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    from collabops.training.features import CALENDAR_FEATURES, CalendarFeatures

    if not isinstance(model, Pipeline) or len(model.steps) != 3:
        raise NotCompilable(f"the model is a {type(model).__name__}, not a three-step Pipeline")
    calendar, encode, estimator = (step for _, step in model.steps)
    if type(calendar) is not CalendarFeatures:
        raise NotCompilable(f"the first step is {type(calendar).__name__}, not CalendarFeatures")
    if list(getattr(calendar, "feature_names_in_", [])) != list(features):
        raise NotCompilable("CalendarFeatures was fitted on other columns than the contract's features")
    if calendar.time_column != contract.time_column:
        raise NotCompilable(f"CalendarFeatures reads '{calendar.time_column}', the contract's time column is "
                            f"'{contract.time_column}'")
    if type(encode) is not ColumnTransformer:
        raise NotCompilable(f"the second step is {type(encode).__name__}, not a ColumnTransformer")
    if getattr(encode, "sparse_output_", False):
        raise NotCompilable("the ColumnTransformer produces a sparse matrix")
    if getattr(encode, "_sklearn_output_config", {}).get("transform") not in (None, "default"):
        raise NotCompilable("the ColumnTransformer is set to output pandas or polars frames")
    if not hasattr(estimator, "predict") or hasattr(estimator, "feature_names_in_"):
        raise NotCompilable(f"the final step {type(estimator).__name__} was not fitted on a plain array")

    if contract.time_column not in features:
        raise NotCompilable(f"the time column '{contract.time_column}' is not a feature")
    after_calendar = [str(c) for c in calendar.get_feature_names_out()]
    if list(getattr(encode, "feature_names_in_", [])) != after_calendar:
        raise NotCompilable("the ColumnTransformer was fitted on other columns than CalendarFeatures makes")
    source = {name: i for i, name in enumerate(features)}
    onehot: list[_OneHot] = []
    passthrough: list[tuple[int, int]] = []
    calendar_out: list[tuple[str, int]] = []
    for name, transformer, columns in encode.transformers_:
        names = _column_names(transformer, columns, after_calendar)
        if transformer == "drop" or not names:
            continue
        start = encode.output_indices_[name].start
        if transformer == "passthrough" or (type(transformer) is FunctionTransformer and transformer.func is None
                                            and transformer.inverse_func is None):
            for offset, column in enumerate(names):
                if column in CALENDAR_FEATURES:
                    calendar_out.append((column, start + offset))
                    continue
                kind = contract.column(column).type
                if kind not in ("int", "float"):
                    raise NotCompilable(f"column '{column}' of type {kind} is passed through unencoded")
                passthrough.append((source[column], start + offset))
        elif type(transformer) is OneHotEncoder:
            onehot += _compile_encoder(transformer, names, source, contract, start)
        else:
            raise NotCompilable(f"transformer '{name}' is a {type(transformer).__name__}")
    width = sum(s.stop - s.start for s in encode.output_indices_.values())
    if getattr(estimator, "n_features_in_", width) != width:
        raise NotCompilable(f"the estimator takes {estimator.n_features_in_} columns, the encoder makes {width}")
    covered = sorted([p for _, p in calendar_out] + [p for _, p in passthrough]
                     + [p for e in onehot for p in e.positions.values()]
                     + [e.null_position for e in onehot if e.null_position is not None])
    if covered != sorted(set(covered)) or (covered and covered[-1] >= width):
        raise NotCompilable("output positions overlap or fall outside the matrix")
    try:
        trees: CompiledTrees | None = CompiledTrees(estimator)
    except NotCompilable:
        trees = None  # the estimator's own predict still gets the compiled matrix
    return CompiledPipeline(tuple(features), width, source[contract.time_column], tuple(calendar_out),
                            tuple(onehot), tuple(passthrough), estimator, trees, TREE_ROWS if trees else 0)


def _compile_encoder(encoder: Any, names: list[str], source: dict[str, int], contract: DataContract,
                     start: int) -> list[_OneHot]:
    if encoder.handle_unknown != "ignore":
        raise NotCompilable(f"OneHotEncoder has handle_unknown='{encoder.handle_unknown}', not 'ignore'")
    if getattr(encoder, "_infrequent_enabled", False):
        raise NotCompilable("OneHotEncoder groups infrequent categories")
    if encoder.sparse_output or np.dtype(encoder.dtype) != np.float64:
        raise NotCompilable("OneHotEncoder does not produce a dense float64 matrix")
    drops = encoder.drop_idx_ if encoder.drop_idx_ is not None else [None] * len(names)
    encoded, position = [], start
    for column, categories, drop in zip(names, encoder.categories_, drops, strict=True):
        if column not in source:
            raise NotCompilable(f"column '{column}', made by CalendarFeatures, is one-hot encoded")
        kind = contract.column(column).type
        if kind not in ("string", "category", "bool"):
            raise NotCompilable(f"column '{column}' of type {kind} is one-hot encoded")
        positions: dict[Any, int] = {}
        null_position: int | None = None
        for k, category in enumerate(categories.tolist()):
            if drop is not None and k == int(drop):
                continue
            if _is_missing(category):
                null_position = position
            else:
                if kind == "bool" and category not in (True, False):
                    raise NotCompilable(f"column '{column}' has the category {category!r} for a flag")
                positions[category if kind == "bool" else str(category)] = position
            position += 1
        if kind == "bool":  # fitted on pandas' nullable booleans, the categories are 0.0/1.0: key by bool
            positions = {bool(k): v for k, v in positions.items()}
        encoded.append(_OneHot(source[column], positions, null_position))
    if position - start != sum(len(c) for c in encoder.categories_) - sum(d is not None for d in drops):
        raise NotCompilable("OneHotEncoder output width does not match its categories")
    return encoded


# ----------------------------------------------------------------------------- load-time check

@dataclass(frozen=True)
class CompiledModel:
    """What the service needs for the fast path."""

    validator: RecordValidator
    pipeline: CompiledPipeline
    checked_rows: int
    max_abs_diff: float


def reference_records(sample: Any, contract: DataContract, features: list[str],
                      limit: int = CHECK_ROWS) -> list[list[dict[str, Any]]]:
    """Batches of records as a client sends them: the sample, then copies with nulls and unknown values."""
    part = sample[features]
    keys = contract.key_columns
    if set(keys) <= set(features):  # one request may not repeat a key (a sample of naive times may)
        part = part.drop_duplicates(subset=keys)
    part = part.head(limit)
    base = json.loads(part.to_json(orient="records", date_format="iso"))  # aware times as exact UTC instants (Z)
    batches = [base]
    for name in features:
        spec = contract.column(name)
        if spec.nullable and name != contract.time_column:
            batches.append([{**r, name: None} for r in base])
        if spec.type == "string":  # numbered, so that the entity column keeps (entity, time) unique
            batches.append([{**r, name: f"{UNKNOWN_PROBE}{i}"} for i, r in enumerate(base)])
    return [b for b in batches if b]


def load_compiled(model: Any, contract: DataContract, features: list[str],
                  sample: Any | None) -> tuple[CompiledModel | None, str]:
    """The compiled path if it reproduces ``model.predict`` on the reference sample, and a line saying why or why not.

    Every reference batch is predicted three ways: by the pipeline on the
    pandera-validated frame (the reference), by the final estimator on the
    compiled matrix, and by the numpy tree walk in chunks of ``TREE_ROWS``.
    A difference above ``TOLERANCE`` in the matrix means no compiled path at
    all; one in the tree walk only switches the tree walk off.
    """
    import pandas as pd

    try:
        pipeline = compile_pipeline(model, contract, features)
        validator = RecordValidator(contract, features)
    except NotCompilable as exc:
        return None, f"sklearn (model not compiled: {exc})"
    except Exception as exc:  # noqa: BLE001 - a model this code did not foresee: serve it the way it always was
        return None, f"sklearn (model not compiled: {type(exc).__name__}: {exc})"
    if sample is None or len(sample) == 0:
        return None, "sklearn (no reference sample to check the compiled path against)"
    missing = [f for f in features if f not in sample.columns]
    if missing:
        return None, f"sklearn (reference sample lacks {', '.join(missing)})"
    worst_matrix, worst_trees, rows_checked = 0.0, 0.0, 0
    for batch in reference_records(sample, contract, features):
        try:
            frame = contract.validate(pd.DataFrame.from_records(batch, columns=features), source="reference",
                                      columns=features)
            with warnings.catch_warnings():  # the unknown-category probes are meant to be unknown
                warnings.simplefilter("ignore", UserWarning)
                expected = np.asarray(model.predict(frame), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - the reference itself failed: nothing to compare with
            return None, f"sklearn (the pipeline cannot predict the reference sample: {type(exc).__name__}: {exc})"
        try:
            rows = validator.rows(batch)
            matrix = pipeline.matrix(rows)
            by_estimator = np.asarray(pipeline.estimator.predict(matrix), dtype=np.float64)
            by_trees = None
            if pipeline.trees is not None:
                step = max(pipeline.tree_rows, 1)
                by_trees = np.concatenate([pipeline.trees.predict(matrix[i:i + step])
                                           for i in range(0, len(rows), step)])
        except RecordError as exc:
            return None, f"sklearn (the compiled path refused a reference row: {exc})"
        except Exception as exc:  # noqa: BLE001 - any failure means: do not trust the compiled path
            return None, f"sklearn (compiled prediction failed: {type(exc).__name__}: {exc})"
        difference = float(np.max(np.abs(by_estimator - expected)))
        if not difference <= TOLERANCE:  # also catches NaN
            return None, (f"sklearn (compiled predictions differ from the pipeline by up to {difference:.3g} "
                          f"on the reference sample; tolerance {TOLERANCE:g})")
        worst_matrix = max(worst_matrix, difference)
        if by_trees is not None:
            difference = float(np.max(np.abs(by_trees - expected)))
            if not difference <= TOLERANCE:
                pipeline = replace(pipeline, trees=None, tree_rows=0)
                worst_trees = difference
            else:
                worst_trees = max(worst_trees, difference)
        rows_checked += len(batch)
    if pipeline.trees is not None:
        walk = f"numpy tree walk for <= {pipeline.tree_rows} rows, max |diff| {worst_trees:.3g}"
    elif worst_trees:
        walk = f"numpy tree walk OFF: it differed by {worst_trees:.3g}"
    else:
        walk = "no numpy tree walk for this estimator"
    return (CompiledModel(validator, pipeline, rows_checked, max(worst_matrix, worst_trees if pipeline.trees else 0)),
            f"compiled (checked on {rows_checked} reference rows against the pipeline's predict, tolerance "
            f"{TOLERANCE:g}: compiled matrix + estimator max |diff| {worst_matrix:.3g}; {walk})")


# ----------------------------------------------------------------------------- inference log

def frame_from_rows(rows: list[tuple[Any, ...]], contract: DataContract, features: list[str]) -> Any:
    """Validated rows as the frame pandera would have produced (same columns and dtypes), for the inference log.

    Times are aware ``datetime64[ns, <contract time zone>]``, as the rules
    make them (a null time is NaT).
    """
    import pandas as pd

    from collabops.data.rules import zone_dtype

    columns = list(zip(*rows, strict=True)) if rows else [()] * len(features)
    data: dict[str, Any] = {}
    for name, values in zip(features, columns, strict=True):
        spec = contract.column(name)
        if spec.type == "datetime":
            instants = [pd.NaT.value if v is None else v.value for v in values]
            data[name] = pd.Series(pd.DatetimeIndex(np.array(instants, dtype="datetime64[ns]"))
                                   .tz_localize("UTC").tz_convert(zone_dtype(contract.time_zone).tz))
        elif spec.type == "int":
            data[name] = pd.Series(values, dtype="Int64" if spec.nullable else "int64")
        elif spec.type == "float":
            data[name] = pd.Series(values, dtype="float64")
        elif spec.type == "bool":
            data[name] = pd.Series(values, dtype="boolean" if spec.nullable else "bool")
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data)
