"""The seeded stratified sample, the bound on what sampling moves a distance, and drift decided as on every row.

``wasserstein_bound`` is a probability statement: with probability at least
``1 - p`` a sampled normed Wasserstein distance lies within it of the
distance on every row. It is checked here empirically: 50 samples of ``n``
rows from a period of 200,000 rows, for a normal, a heavily skewed (rain:
mostly zeros, an exponential tail) and a discrete column, must fall within
the bound in at least ``(1 - p)`` of the draws with ``p = 0.05`` (the bound
is conservative, so in practice all do; the check allows the stated share).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from collabops.monitoring.drift import detect_drift, evidently_frame, evidently_report
from collabops.monitoring.sampling import j1, stratified_sample, wasserstein_bound

POPULATION = 200_000
DRAWS = 50
P = 0.05


def _strata_frame(rows: int = 10_007, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(["a", "b", "c", "d"], size=rows, p=[0.6, 0.3, 0.09, 0.01])
    day = rng.integers(0, 7, size=rows)
    return pd.DataFrame({"kind": kinds, "day": day, "value": rng.normal(size=rows)},
                        index=pd.RangeIndex(100, 100 + rows))


def test_the_sample_is_the_same_for_a_seed_and_differs_for_another():
    frame = _strata_frame()
    first = stratified_sample(frame, ["kind", "day"], 1_000, seed=11)
    again = stratified_sample(frame, ["kind", "day"], 1_000, seed=11)
    other = stratified_sample(frame, ["kind", "day"], 1_000, seed=12)
    assert first.index.equals(again.index)
    assert not first.index.equals(other.index)
    assert first.index.is_monotonic_increasing  # the frame's row order, its own index
    assert first.index.isin(frame.index).all() and first.index.is_unique


@pytest.mark.parametrize("n", [50, 1_000, 7_777])
def test_every_stratum_keeps_its_share_within_one_row(n):
    frame = _strata_frame()
    sample = stratified_sample(frame, ["kind", "day"], n, seed=5)
    sizes = frame.groupby(["kind", "day"]).size()
    taken = sample.groupby(["kind", "day"]).size().reindex(sizes.index, fill_value=0)
    expected = sizes * n / len(frame)
    assert (taken - expected).abs().max() <= 1
    assert abs(len(sample) - n) <= len(sizes)  # rounding per stratum, at most one row each


def test_missing_values_form_their_own_stratum():
    frame = _strata_frame()
    frame.loc[frame.index[::10], "kind"] = None
    sample = stratified_sample(frame, ["kind"], 2_000, seed=1)
    share = frame["kind"].isna().mean() * 2_000
    assert abs(sample["kind"].isna().sum() - share) <= 1


@pytest.mark.parametrize("n", [10_007, 20_000])
def test_a_sample_as_large_as_the_frame_is_the_frame(n):
    frame = _strata_frame()
    assert stratified_sample(frame, ["kind"], n, seed=0).equals(frame)


def _w1(reference_sorted: np.ndarray, values: np.ndarray) -> float:
    """The Wasserstein-1 distance of two samples (scipy's formula, the reference sorted once; checked against it)."""
    ordered = np.sort(values)
    grid = np.sort(np.concatenate([reference_sorted, ordered]))
    below = grid[:-1]
    gap = (np.searchsorted(reference_sorted, below, "right") / len(reference_sorted)
           - np.searchsorted(ordered, below, "right") / len(ordered))
    return float(np.sum(np.abs(gap) * np.diff(grid)))


def test_the_distance_used_here_is_scipys():
    from scipy.stats import wasserstein_distance

    for reference, current in _populations().values():
        assert _w1(np.sort(reference), current[:5_000]) == pytest.approx(wasserstein_distance(reference,
                                                                                               current[:5_000]))


def _populations() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reference, current period) per kind of column; the period has POPULATION rows."""
    rng = np.random.default_rng(2024)

    def rain(size: int, scale: float) -> np.ndarray:
        wet = rng.random(size) < 0.12
        return np.where(wet, np.round(rng.exponential(scale, size), 1), 0.0)

    return {
        "normal": (rng.normal(0, 1, 20_000), rng.normal(0.15, 1.1, POPULATION)),
        "skewed": (rain(20_000, 1.2), rain(POPULATION, 1.5)),
        "discrete": (rng.integers(0, 5, 20_000).astype(float), rng.choice(5, POPULATION, p=[.3, .3, .2, .1, .1])
                     .astype(float)),
    }


@pytest.mark.parametrize("n", [1_000, 10_000])
def test_the_sampled_distance_lies_within_the_bound_in_at_least_1_minus_p_of_the_draws(n):
    rng = np.random.default_rng(n)
    for name, (reference, current) in _populations().items():
        norm, reference_sorted = float(np.std(reference)), np.sort(reference)
        full = _w1(reference_sorted, current) / norm
        spread = float(current.max() - current.min())
        within = 0
        for _ in range(DRAWS):
            sample = rng.choice(current, n, replace=False)
            sampled = _w1(reference_sorted, sample) / norm
            within += abs(sampled - full) <= wasserstein_bound(sample, spread, norm, n, P)
        assert within >= math.ceil((1 - P) * DRAWS), (name, n, within)


def test_the_bound_shrinks_with_the_sample_and_grows_with_confidence():
    _, current = _populations()["normal"]
    spread = float(current.max() - current.min())
    bounds = [wasserstein_bound(current[:n], spread, 1.0, n, P) for n in (100, 1_000, 10_000, 100_000)]
    assert all(a > b for a, b in itertools.pairwise(bounds))
    assert bounds[0] / bounds[2] == pytest.approx(10, rel=0.2)  # ~ 1 / sqrt(n)
    assert wasserstein_bound(current[:1000], spread, 1.0, 1000, 1e-3) > wasserstein_bound(current[:1000], spread,
                                                                                          1.0, 1000, P)
    assert wasserstein_bound(current[:1000], spread, 0.0, 1000, P) == math.inf
    assert j1(np.ones(10)) == 0.0 and j1(np.array([1.0])) == 0.0


def _drift_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(99)
    rows_ref, rows_cur = 8_000, 30_000

    def frame(rows: int, shift: float, drifted_kinds: bool) -> pd.DataFrame:
        return pd.DataFrame({
            "far": rng.normal(shift * 10, 1, rows),  # ~1.0 in the current period: far above 0.1
            "near": rng.normal(shift, 1, rows),  # ~0.1: at the threshold
            "quiet": rng.normal(0, 1, rows),  # ~0: below
            "kind": rng.choice(["x", "y", "z"], rows, p=[0.5, 0.3, 0.2] if not drifted_kinds else [0.3, 0.3, 0.4]),
            "flag": rng.random(rows) < (0.2 if not drifted_kinds else 0.22),
            "segment": rng.choice(["s1", "s2"], rows),
        })

    return frame(rows_ref, 0.0, False), frame(rows_cur, 0.1, True)


KINDS = {"far": "numerical", "near": "numerical", "quiet": "numerical", "kind": "categorical",
         "flag": "categorical"}
THRESHOLDS = {"far": 0.1, "near": 0.1, "quiet": 0.1, "kind": 0.1, "flag": 0.1}


def test_a_sampled_drift_rechecks_near_thresholds_and_categories_on_every_row_and_decides_as_the_full_report():
    reference, current = _drift_frames()
    result = detect_drift(reference, current, KINDS, THRESHOLDS, sample_rows=5_000, strata=["segment"], seed=4,
                          error_probability=1e-3)
    assert result.current_rows == len(current) and result.sample_rows < len(current)
    assert abs(result.sample_rows - 5_000) <= 2
    by_column = {c.column: c for c in result.columns}
    for column, kind in KINDS.items():
        drift = by_column[column]
        if kind == "categorical":
            assert drift.exact, column
        else:
            assert drift.bound is not None and drift.bound > 0
            assert drift.exact == (abs(drift.sampled - drift.threshold) <= drift.bound), column
            if not drift.exact:
                assert drift.distance == drift.sampled
    # both branches are exercised: a numerical column far from its threshold, one within its bound
    assert not by_column["far"].exact and by_column["near"].exact

    _, full = evidently_report(evidently_frame(reference, KINDS), evidently_frame(current, KINDS), KINDS, THRESHOLDS)
    for column in KINDS:
        value, threshold, _method = full[column]
        assert by_column[column].drifted == (value >= threshold), (column, value, by_column[column])
        if by_column[column].exact:
            assert by_column[column].distance == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert by_column["far"].drifted and not by_column["quiet"].drifted and by_column["kind"].drifted
