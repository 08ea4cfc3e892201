"""Data and prediction drift per column, computed and drawn by Evidently.

Each monitored column is compared between the reference's season and the
current period with Evidently's effect sizes, never p-values (on hundreds of
thousands of rows every difference is "significant"): the Wasserstein
distance divided by the reference's standard deviation for numerical
columns (``wasserstein``), the Jensen-Shannon distance for categorical and
boolean ones (``jensenshannon``); a column drifted when its distance is at
least its threshold (Evidently's rule: ``value >= threshold``). These are the
methods Evidently itself picks for a reference of more than 1,000 rows; they
are named here so that a small season does not switch to p-value tests.

Large periods go to Evidently as a seeded stratified sample
(:mod:`collabops.monitoring.sampling`). A numerical column whose sampled
distance lies within :func:`~collabops.monitoring.sampling.wasserstein_bound`
of its threshold, and every categorical column (whose counts are cheap), is
measured again on every current row with the same Evidently test function,
and that distance decides. So every decision is the one Evidently's report
on every row would make, except with probability at most
``sample_error_probability`` per sampled numerical column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from collabops.monitoring.sampling import stratified_sample, wasserstein_bound

Kind = Literal["numerical", "categorical"]
NUMERICAL_METHOD = "wasserstein"
CATEGORICAL_METHOD = "jensenshannon"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's comparison. ``distance`` decides (on every row when ``exact``); ``sampled`` is the report's."""

    column: str
    kind: Kind
    method: str
    threshold: float
    distance: float
    drifted: bool
    sampled: float
    bound: float | None
    exact: bool

    def describe(self) -> str:
        how = "every row" if self.exact else f"sample, within ±{self.bound:.3f}" if self.bound is not None else \
            "every row"
        return (f"{self.column}: {self.method} {self.distance:.3f} "
                f"{'>=' if self.drifted else '<'} {self.threshold:g} ({how})")


@dataclass(frozen=True)
class DriftResult:
    """Every monitored column's comparison, the prediction's among them (``prediction_column``)."""

    columns: list[ColumnDrift]
    reference_rows: int
    current_rows: int
    sample_rows: int
    prediction_column: str | None
    snapshot: Any = field(repr=False, compare=False, default=None)
    """Evidently's ``Snapshot`` of the report (``save_html``, ``get_html_str``), on the sample."""

    @property
    def features(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.column != self.prediction_column]

    @property
    def drifted_features(self) -> list[str]:
        return [c.column for c in self.features if c.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def prediction_drifted(self) -> bool:
        return any(c.drifted for c in self.columns if c.column == self.prediction_column)

    def html(self) -> str:
        return self.snapshot.get_html_str(as_iframe=False) if self.snapshot is not None else ""

    def summary(self) -> dict[str, Any]:
        return {"reference_rows": self.reference_rows, "current_rows": self.current_rows,
                "sample_rows": self.sample_rows, "drifted_features": self.drifted_features,
                "drifted_share": round(self.drifted_share, 4), "prediction_drifted": self.prediction_drifted,
                "columns": {c.column: {"method": c.method, "distance": round(c.distance, 6),
                                       "threshold": c.threshold, "drifted": c.drifted, "exact": c.exact,
                                       "sampled": round(c.sampled, 6),
                                       "bound": None if c.bound is None else round(c.bound, 6)}
                            for c in self.columns}}


def evidently_column(series: pd.Series, kind: Kind) -> pd.Series:
    """One column as Evidently reads it: categorical (text, categories, booleans) as text with missing values kept
    missing (``True`` becomes ``"True"``: the distance compares shares per value, which this naming does not
    change); numerical as float64 (NaN for missing)."""
    if kind == "numerical":
        return series.astype("float64")
    if isinstance(series.dtype, pd.CategoricalDtype):  # convert the categories, not every row
        return series.cat.rename_categories([str(c) for c in series.cat.categories]).astype("object").where(
            series.notna(), None)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.map({True: "True", False: "False"}).astype("object").where(series.notna(), None)
    text = series.astype("object").where(series.notna(), None)
    return text.map(lambda v: v if v is None or isinstance(v, str) else str(v))


def evidently_frame(frame: pd.DataFrame, kinds: dict[str, Kind]) -> pd.DataFrame:
    """``frame[kinds]`` as Evidently reads it (:func:`evidently_column` for each)."""
    return pd.DataFrame({column: evidently_column(frame[column], kind) for column, kind in kinds.items()},
                        index=frame.index)


def evidently_report(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, Kind],
                     thresholds: dict[str, float] | None = None, methods: bool = True) -> tuple[Any, dict[str, Any]]:
    """Run Evidently's ``DataDriftPreset`` on the ``kinds`` columns; returns (snapshot, ``{column: (distance,
    threshold, method)}``).

    ``methods``: name the effect-size methods (:data:`NUMERICAL_METHOD`,
    :data:`CATEGORICAL_METHOD`) and ``thresholds``; False runs the preset as a
    user would with no options (Evidently chooses), which the benchmark
    compares with. Frames come as :func:`evidently_frame` makes them.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=[c for c, k in kinds.items() if k == "numerical"],
                                categorical_columns=[c for c, k in kinds.items() if k == "categorical"])
    options: dict[str, Any] = {"columns": list(kinds)}
    if methods:
        options.update(num_method=NUMERICAL_METHOD, cat_method=CATEGORICAL_METHOD,
                       per_column_threshold=dict(thresholds or {}))
    report = Report([DataDriftPreset(**options)], include_tests=False)
    snapshot = report.run(Dataset.from_pandas(current, data_definition=definition),
                          Dataset.from_pandas(reference, data_definition=definition))
    values: dict[str, Any] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            values[config["column"]] = (float(metric["value"]), float(config["threshold"]), str(config["method"]))
    return snapshot, values


def exact_distance(reference: pd.Series, current: pd.Series, kind: Kind, threshold: float) -> float:
    """The distance on every row, by Evidently's own test function (NaN rows dropped, as Evidently drops them)."""
    from evidently.legacy.calculations.stattests import jensenshannon_stat_test, wasserstein_stat_test

    test = wasserstein_stat_test if kind == "numerical" else jensenshannon_stat_test
    value, _drifted = test.func(reference.dropna(), current.dropna(), "num" if kind == "numerical" else "cat",
                                threshold)
    return float(value)


def detect_drift(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, Kind],
                 thresholds: dict[str, float], sample_rows: int, strata: list[str | pd.Series], seed: int,
                 error_probability: float, prediction_column: str | None = None) -> DriftResult:
    """Compare every column of ``kinds`` between ``reference`` (the season) and ``current`` (see the module).

    ``thresholds``: one per column of ``kinds``. ``current`` larger than
    ``sample_rows`` is sampled (:func:`stratified_sample` over ``strata``,
    column names or Series aligned with ``current``; ``seed``). The current
    rows are never copied as a whole: a column is converted for Evidently on
    every row only when it is measured on every row. Raises ``ValueError``
    when either frame has no rows.
    """
    if len(reference) == 0 or len(current) == 0:
        raise ValueError("detect_drift needs reference and current rows")
    sample = stratified_sample(current, strata, sample_rows, seed)
    sampled = len(sample) < len(current)
    ref_frame = evidently_frame(reference, kinds)
    snapshot, values = evidently_report(ref_frame, evidently_frame(sample, kinds), kinds, thresholds)
    results = []
    for column, kind in kinds.items():
        value, threshold, method = values[column]
        distance, bound, exact = value, None, not sampled
        if sampled:
            if kind == "numerical":
                low, high = current[column].min(), current[column].max()
                spread = float(high - low) if pd.notna(low) and pd.notna(high) else 0.0
                norm = max(float(np.std(ref_frame[column].dropna())), 0.001)  # Evidently's norm
                bound = wasserstein_bound(sample[column].dropna().to_numpy(dtype=float), spread, norm,
                                          int(sample[column].notna().sum()), error_probability)
            if kind == "categorical" or abs(value - threshold) <= (bound or 0.0):
                distance = exact_distance(ref_frame[column], evidently_column(current[column], kind), kind, threshold)
                exact = True
        results.append(ColumnDrift(column=column, kind=kind, method=method, threshold=threshold, distance=distance,
                                   drifted=distance >= threshold, sampled=value, bound=bound, exact=exact))
    return DriftResult(columns=results, reference_rows=len(reference), current_rows=len(current),
                       sample_rows=len(sample), prediction_column=prediction_column, snapshot=snapshot)
