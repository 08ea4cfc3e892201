"""A seeded, stratified sample of a large period, and the bound on what sampling can move a distance.

Evidently compares distributions on every row it is given; on millions of
current rows most of its time goes into building the report's histograms and
frames, not into the distances. Drift only needs the distributions, and a
sample of ``n`` rows drawn at random, in proportion from every stratum
(segment x local day, so the kinds and days keep their weights), estimates
them with an error that shrinks as ``1/sqrt(n)``:

For a numerical column, Evidently's distance is the Wasserstein-1 distance
``W1(ref, cur)`` divided by the reference's standard deviation. By the
triangle inequality ``|W1(ref, sample) - W1(ref, cur)| <= W1(sample, cur)``,
and for a sample of ``n`` rows

    E W1(sample, cur) <= J1 / sqrt(n),   J1 = integral of sqrt(F(x) (1 - F(x))) dx

(Bobkov and Ledoux, "One-dimensional empirical measures, order statistics,
and Kantorovich transport distances", Mem. AMS 261 (2019), Theorem 3.5), and
``W1(sample, cur)`` changes by at most ``range / n`` when one sampled row
changes, so by McDiarmid's inequality it exceeds its mean by more than
``range * sqrt(ln(1/p) / (2 n))`` with probability at most ``p``. The sum,
divided by the reference's standard deviation, is :func:`wasserstein_bound`:
with probability at least ``1 - p`` the sampled distance is within it of the
distance on every row. (Drawing without replacement from a finite period
only tightens both, by Hoeffding's 1963 comparison.)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def stratified_sample(frame: pd.DataFrame, strata: list[str | pd.Series], n: int, seed: int) -> pd.DataFrame:
    """``n`` rows of ``frame`` (all of them when it has no more), in proportion from every stratum.

    ``strata``: column names or Series aligned with ``frame`` (a derived key,
    such as the local day, without copying the frame) whose value
    combinations are the strata (missing values form their own stratum). Each stratum gives
    ``round(size * n / len(frame))`` rows drawn at random without
    replacement (``numpy.random.default_rng(seed)``); the same frame, ``n``
    and ``seed`` give the same rows. The result keeps ``frame``'s row order
    and its index.
    """
    if n >= len(frame):
        return frame
    rng = np.random.default_rng(seed)
    by = [frame[key] if isinstance(key, str) else key for key in strata]
    keys = frame.groupby(by, sort=False, dropna=False, observed=True).ngroup().to_numpy() if by else \
        np.zeros(len(frame), dtype=np.int64)
    fraction = n / len(frame)
    order = np.argsort(rng.random(len(frame)), kind="stable")  # a random permutation, then stable per stratum
    by_stratum = order[np.argsort(keys[order], kind="stable")]
    sizes = np.bincount(keys)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    take = np.rint(sizes * fraction).astype(np.int64)
    chosen = np.concatenate([by_stratum[s:s + t] for s, t in zip(starts, take, strict=True) if t])
    return frame.iloc[np.sort(chosen)]


def j1(values: np.ndarray) -> float:
    """``J1 = integral of sqrt(F (1 - F)) dx`` of the empirical distribution of ``values`` (shape ``(n,)``, no NaN),
    in the values' unit; 0 for fewer than two distinct values."""
    ordered = np.sort(np.asarray(values, dtype=float))
    if len(ordered) < 2:
        return 0.0
    share = np.arange(1, len(ordered)) / len(ordered)
    return float(np.sum(np.sqrt(share * (1 - share)) * np.diff(ordered)))


def wasserstein_bound(sample: np.ndarray, value_range: float, reference_std: float, n: int,
                      error_probability: float) -> float:
    """How far a sampled normed Wasserstein distance may lie from the one on every row (see the module docstring).

    ``sample``: the sampled values (no NaN); ``value_range``: max - min over
    every current row; ``reference_std``: the reference's standard deviation
    (Evidently's norm); ``n``: the sample's size. Returns
    ``(J1 / sqrt(n) + range * sqrt(ln(1/p) / (2 n))) / reference_std``;
    ``inf`` when the reference does not vary (its distance is not defined).
    """
    if reference_std <= 0 or n <= 0:
        return math.inf
    expected = j1(sample) / math.sqrt(n)
    deviation = value_range * math.sqrt(math.log(1 / error_probability) / (2 * n))
    return (expected + deviation) / reference_std
