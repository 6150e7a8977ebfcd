"""Bootstrap intervals for a method's accuracy over training seeds and test pairs.

A learning table ranks methods by a mean over a few seeds on a few hundred pairs; both the seeds
and the pairs are samples. The intervals here resample both: the seeds (rows) and the pairs
(columns) of a ``seeds x pairs`` matrix of per-pair scores (1 correct, 0 not), independently and
with replacement, every seed keeping the same draw of pairs (the pairs are shared). The interval
is the percentile one. A paired difference between two methods resamples the seeds and pairs of
both at once: seed ``s`` of one is matched with seed ``s`` of the other (same data order and
sampling seed) and pair ``p`` with pair ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap interval at ``level``."""

    mean: float
    low: float
    high: float
    level: float = 0.95

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "level": self.level}


def _matrix(scores) -> np.ndarray:
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(f"expected a seeds x pairs matrix with at least one of each, got shape {matrix.shape}")
    return matrix


def seeds_and_pairs(scores, *, level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """The mean of ``scores`` (seeds x pairs) and its two-way bootstrap interval."""
    matrix = _matrix(scores)
    n_seeds, n_pairs = matrix.shape
    rng = np.random.default_rng(seed)
    # A resample's mean is sum_i sum_j m[r_i, c_j] / (S P) = w_r . m . w_c / (S P), with w the draw counts.
    row_counts = np.stack([np.bincount(draw, minlength=n_seeds) for draw in
                           rng.integers(0, n_seeds, size=(resamples, n_seeds))])
    col_counts = np.stack([np.bincount(draw, minlength=n_pairs) for draw in
                           rng.integers(0, n_pairs, size=(resamples, n_pairs))])
    means = np.einsum("bs,sp,bp->b", row_counts, matrix, col_counts) / (n_seeds * n_pairs)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(matrix.mean()), float(low), float(high), level)


def paired_difference(first, second, *, level: float = 0.95, resamples: int = RESAMPLES,
                      seed: int = 0) -> Interval:
    """``first - second`` (both seeds x pairs, seed by seed and pair by pair) and its interval."""
    a, b = _matrix(first), _matrix(second)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must have one shape, got {a.shape} and {b.shape}")
    return seeds_and_pairs(a - b, level=level, resamples=resamples, seed=seed)
