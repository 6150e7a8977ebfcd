"""Bootstrap intervals over seeds and pairs, against distributions worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fadtq.evaluation.intervals import paired_difference, seeds_and_pairs


def test_two_pairs_one_right_spread_over_the_whole_range():
    # One seed, pairs (0, 1): a resample draws 2 pairs with replacement, so its mean is 0 (1/4),
    # 1/2 (1/2) or 1 (1/4); the 2.5% and 97.5% quantiles are 0 and 1.
    interval = seeds_and_pairs([[0, 1]], resamples=4000)
    assert (interval.mean, interval.low, interval.high) == (0.5, 0.0, 1.0)


def test_seeds_are_resampled_too():
    # Two seeds, one always right and one always wrong: resampling pairs alone would give [0.5, 0.5];
    # resampling seeds gives 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4.
    interval = seeds_and_pairs([[1, 1, 1], [0, 0, 0]], resamples=4000)
    assert (interval.mean, interval.low, interval.high) == (0.5, 0.0, 1.0)


def test_a_constant_score_has_no_width():
    interval = seeds_and_pairs(np.full((4, 50), 0.75), resamples=500)
    assert (interval.mean, interval.low, interval.high) == (0.75, 0.75, 0.75)


def test_one_seed_on_300_pairs_matches_the_binomial_standard_error():
    # 240 of 300 right: p = 0.8, standard error sqrt(0.8 * 0.2 / 300) = 0.02309, so the normal 95%
    # interval is 0.8 -/+ 1.96 * 0.02309 = [0.7547, 0.8453].
    scores = [[1] * 240 + [0] * 60]
    interval = seeds_and_pairs(scores)
    half = 1.959964 * math.sqrt(0.8 * 0.2 / 300)
    assert interval.mean == pytest.approx(0.8)
    assert interval.low == pytest.approx(0.8 - half, abs=0.006)
    assert interval.high == pytest.approx(0.8 + half, abs=0.006)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    scores = np.random.default_rng(3).integers(0, 2, size=(4, 120))
    assert seeds_and_pairs(scores, seed=1) == seeds_and_pairs(scores, seed=1)
    assert seeds_and_pairs(scores, seed=1) != seeds_and_pairs(scores, seed=2)


def test_a_paired_difference_cancels_what_both_methods_share():
    # The second method is right where the first is, and on pair 0 of every seed too: the difference
    # is -1 on pair 0 and 0 elsewhere, so a resample's difference is -k/10 with k ~ Binomial(10, 0.1)
    # draws of pair 0 (P(k = 0) = 0.35, P(k >= 5) = 0.002), whatever the pairs the methods share.
    rng = np.random.default_rng(0)
    first = rng.integers(0, 2, size=(4, 10))
    first[:, 0] = 0
    second = first.copy()
    second[:, 0] = 1
    difference = paired_difference(first, second)
    assert difference.mean == pytest.approx(-0.1)
    assert difference.high <= 0.0 and difference.low >= -0.4
    assert seeds_and_pairs(first).high - seeds_and_pairs(first).low > difference.high - difference.low


def test_shapes_that_are_not_seeds_by_pairs_are_refused():
    with pytest.raises(ValueError, match="seeds x pairs"):
        seeds_and_pairs([1, 0, 1])
    with pytest.raises(ValueError, match="one shape"):
        paired_difference([[1, 0]], [[1, 0, 1]])
