"""The period's data against the contract and the reference: what the drift distances do not say.

Values outside the contract's types, ranges and categories never get in:
every door (the service, a file read with the contract) refuses them. What
monitoring counts is what is allowed but new to the model:

- a feature the contract names that the current data lacks (it cannot be
  compared; the verdict says so);
- nulls: a column's share of nulls above the reference's by more than
  ``max_null_increase``;
- new categories: values of a categorical or text feature (the entity, the
  segment) that never appeared in the reference;
- out of the reference's range: numerical values below the reference's
  smallest or above its largest value, the range the model was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from collabops.data.contract import DataContract

SHOWN_VALUES = 5


@dataclass(frozen=True)
class QualityProblem:
    """One finding: ``check`` is ``missing``, ``nulls``, ``new_categories`` or ``out_of_range``."""

    column: str
    check: str
    rows: int
    detail: str

    def describe(self) -> str:
        return f"{self.column}: {self.detail}"


def check_quality(current: pd.DataFrame, reference: pd.DataFrame, contract: DataContract, columns: list[str],
                  max_null_increase: float, prediction: str | None = None) -> list[QualityProblem]:
    """Every problem of ``current`` in ``columns`` (contract feature columns), against ``reference``; with
    ``prediction`` (a column name), predictions outside the target's range in the contract too.

    Both frames are typed by the contract (``contract.validate``). Returns the
    problems in column order, an empty list when there are none.
    """
    problems: list[QualityProblem] = []
    for column in columns:
        if column not in current.columns:
            problems.append(QualityProblem(column, "missing", len(current),
                                           "missing from the current data: not compared (the model needs it)"))
            continue
        spec = contract.column(column)
        series = current[column]
        ref = reference[column] if column in reference.columns else pd.Series(dtype=series.dtype)
        nulls, ref_nulls = float(series.isna().mean()), float(ref.isna().mean()) if len(ref) else 0.0
        if nulls - ref_nulls > max_null_increase:
            problems.append(QualityProblem(column, "nulls", int(series.isna().sum()),
                                           f"{nulls:.1%} nulls against {ref_nulls:.1%} in the reference"))
        present = series.dropna()
        if spec.type in ("string", "category") and len(ref):
            seen = set(ref.dropna().astype(str).unique())
            values = present.astype(str)
            new = values[~values.isin(seen)]
            if len(new):
                shown = ", ".join(repr(v) for v in sorted(new.unique())[:SHOWN_VALUES])
                more = new.nunique() - SHOWN_VALUES
                problems.append(QualityProblem(column, "new_categories", len(new),
                                               f"{new.nunique()} value(s) never seen in the reference, in "
                                               f"{len(new):,} rows: {shown}" + (f" and {more} more" if more > 0
                                                                               else "")))
        elif spec.type in ("int", "float") and ref.notna().any() and len(present):
            low, high = float(ref.min()), float(ref.max())
            outside = present[(present < low) | (present > high)]
            if len(outside):
                problems.append(QualityProblem(column, "out_of_range", len(outside),
                                               f"{len(outside):,} value(s) outside the reference's range "
                                               f"[{low:g}, {high:g}] (from {float(outside.min()):g} to "
                                               f"{float(outside.max()):g})"))
    if prediction and prediction in current.columns:
        target = contract.column(contract.target)
        values = current[prediction].dropna()
        below = values < target.min if target.min is not None else pd.Series(False, index=values.index)
        above = values > target.max if target.max is not None else pd.Series(False, index=values.index)
        outside = values[below | above]
        if len(outside):
            problems.append(QualityProblem(prediction, "out_of_range", len(outside),
                                           f"{len(outside):,} prediction(s) outside the target's range in the "
                                           f"contract, {target.describe_domain()} (from {float(outside.min()):g} "
                                           f"to {float(outside.max()):g})"))
    return problems


def summary(problems: list[QualityProblem]) -> list[dict[str, Any]]:
    return [{"column": p.column, "check": p.check, "rows": p.rows, "detail": p.detail} for p in problems]
