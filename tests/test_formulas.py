"""Every equation in ``fadtq.formulas`` against values computed by hand (arithmetic in comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fadtq import formulas
from fadtq.formulas import (
    EPS,
    clamp01,
    weighted_sum,
    gpg_alpha,
    group_centre,
    group_index,
    group_standardise,
    leave_one_out,
    normalise_score,
    zero_variance_count,
)

SQ2 = math.sqrt(2.0)

# Shared fixture: three groups of unequal size, ids interleaved (not contiguous).
#   index:   0    1    2    3    4    5
#   group:   a    b    a    c    b    a
#   reward:  0    5    3    7    1    3
# group a = idx 0,2,5 -> [0,3,3]; b = idx 1,4 -> [5,1]; c = idx 3 -> [7]
INTERLEAVED_R = [0.0, 5.0, 3.0, 7.0, 1.0, 3.0]
INTERLEAVED_G = ["a", "b", "a", "c", "b", "a"]


def test_eps_is_the_papers():
    assert EPS == 1e-12


# --------------------------------------------------------------------------------------------
# clamp01, weighted_sum (the paper's eta mix), normalise_score
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value, expected",
    [(None, 0.0), (-0.5, 0.0), (0.0, 0.0), (0.3, 0.3), (1.0, 1.0), (1.7, 1.0), (3, 1.0), (-1e-9, 0.0)],
)
def test_clamp01(value, expected):
    # min(1, max(0, value)); None (gate value not computed) closes the gate
    assert clamp01(value) == pytest.approx(expected)
    assert isinstance(clamp01(value), float)


@pytest.mark.parametrize(
    "conc, rel, eta, expected",
    [
        (1.0, 0.0, 0.3, 0.3),  # 0.3*1 + 0.7*0
        (0.0, 1.0, 0.3, 0.7),  # 0.3*0 + 0.7*1
        (2 / 3, 1 / 3, 0.5, 0.5),  # 0.5*2/3 + 0.5*1/3 = 1/3 + 1/6 = 1/2
        (2 / 3, 1 / 3, 0.0, 1 / 3),  # eta 0: relevance only
        (2 / 3, 1 / 3, 1.0, 2 / 3),  # eta 1: conciseness only
        (1.0, 1.0, 0.25, 1.0),  # 0.25 + 0.75
        (1 / 3, 1.0, 0.25, 0.8333333333333334),  # 0.25/3 + 0.75 = 1/12 + 9/12 = 10/12
    ],
)
def test_eta_mix(conc, rel, eta, expected):
    assert eta_mix(conc, rel, eta) == pytest.approx(expected)


def eta_mix(conc: float, rel: float, eta: float) -> float:
    """The paper's r_tq through the library's mix: weights (eta, 1 - eta) on (r_conc, r_rel)."""
    return weighted_sum([(conc, eta), (rel, 1.0 - eta)])


@pytest.mark.parametrize(
    "score, top, expected",
    [(0, 3, 0.0), (1, 3, 1 / 3), (2, 3, 2 / 3), (3, 3, 1.0), (4, 5, 0.8), (0, 5, 0.0)],
)
def test_normalise_score(score, top, expected):
    assert normalise_score(score, top) == pytest.approx(expected)


def test_normalise_score_default_top_is_three():
    assert normalise_score(2) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------------------
# group_index
# --------------------------------------------------------------------------------------------

def test_group_index_order_of_first_appearance():
    idx = group_index(INTERLEAVED_G)
    assert [list(i) for i in idx] == [[0, 2, 5], [1, 4], [3]]


# --------------------------------------------------------------------------------------------
# group_standardise
# --------------------------------------------------------------------------------------------

def test_standardise_two_values():
    # [0,1]: mean .5, population std sqrt(((.5)^2 + (.5)^2)/2) = .5 -> (0-.5)/.5 = -1, (1-.5)/.5 = +1
    out = group_standardise(np.array([0.0, 1.0]), [0, 0])
    np.testing.assert_allclose(out, [-1.0, 1.0], rtol=1e-9)


def test_standardise_one_two_three():
    # [1,2,3]: mean 2, population var (1+0+1)/3 = 2/3 -> A = (x-2)/sqrt(2/3) = [-1.2247, 0, 1.2247]
    s = math.sqrt(2 / 3)
    out = group_standardise(np.array([1.0, 2.0, 3.0]), ["g"] * 3)
    np.testing.assert_allclose(out, [-1 / s, 0.0, 1 / s], rtol=1e-9, atol=1e-12)


def test_standardise_interleaved_unequal_groups():
    # a [0,3,3]: mean 2, pop var (4+1+1)/3 = 2, std sqrt2 -> [-2/sqrt2, 1/sqrt2, 1/sqrt2] = [-sqrt2, .7071, .7071]
    # b [5,1]:   mean 3, pop std 2 -> [+1, -1]
    # c [7]:     single rollout -> 0
    expected = [-SQ2, 1.0, 1 / SQ2, 0.0, -1.0, 1 / SQ2]
    out = group_standardise(np.array(INTERLEAVED_R), INTERLEAVED_G)
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)


def test_standardise_ddof1():
    # ddof=1: [1,2,3] sample var (1+0+1)/2 = 1 -> [-1, 0, 1]
    np.testing.assert_allclose(group_standardise([1.0, 2.0, 3.0], [0, 0, 0], ddof=1), [-1, 0, 1], atol=1e-9)
    # ddof=1: [0,1] sample var (.25+.25)/1 = .5, std .7071 -> -.5/.7071 = -.7071, +.7071
    np.testing.assert_allclose(group_standardise([0.0, 1.0], [0, 0], ddof=1), [-1 / SQ2, 1 / SQ2], rtol=1e-9)


def test_standardise_ddof1_rescales_by_sqrt_n_over_n_minus_1():
    # docstring: ddof=1 only rescales by sqrt(n/(n-1)); n=3 -> pop/sample = sqrt(3/2)
    r = [0.0, 1.0, 5.0]
    pop = group_standardise(r, [0, 0, 0])
    sample = group_standardise(r, [0, 0, 0], ddof=1)
    np.testing.assert_allclose(pop, sample * math.sqrt(3 / 2), rtol=1e-9)


@pytest.mark.parametrize("ddof", [0, 1])
def test_standardise_single_rollout_group_is_zero(ddof):
    # a lone rollout has nothing to compare with: 0, never nan (ddof=1 would divide by 0)
    out = group_standardise([2.5, 0.0, 1.0], ["lone", "pair", "pair"], ddof=ddof)
    assert out[0] == 0.0
    assert not np.any(np.isnan(out))


@pytest.mark.parametrize("value", [0.0, 1.0, 2.0, 3.0, 2.5])
@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_standardise_zero_variance_exact_values_give_zeros(value, n):
    out = group_standardise([value] * n, [0] * n)
    assert np.all(out == 0.0)


# Regression test (fixed bug in fadtq/formulas.py, group_standardise, line ~52): for a flat group whose value is not exactly
# representable, values.mean() differs from the values by one ulp, std is ~1e-16, and dividing by
# (std + 1e-12) turns the rounding error into an advantage of about +-4.4e-4, the same sign for every
# rollout of the group. E.g. six rollouts all with R = 1 + 1 + (0.5*2/3 + 0.5*3/3) = 2.8333... give
# A = +4.44e-4 each instead of 0. The docstring says "zero for zero-variance groups", and
# zero_variance_count() (np.ptp == 0) counts the same group as flat, so the two disagree.
@pytest.mark.parametrize(
    "value, n",
    [
        (0.1, 3),
        (2.7, 3),
        (2.0 + eta_mix(normalise_score(2), normalise_score(3), 0.5), 6),  # a realistic R of the paper = 2.8333...
        (2.0 + eta_mix(normalise_score(0), normalise_score(3), 0.3), 3),  # R = 2 + .7 = 2.7
    ],
)
def test_standardise_zero_variance_inexact_values_give_zeros(value, n):
    rewards = [value] * n
    assert zero_variance_count(rewards, [0] * n) == n  # the formulas module itself calls this group flat
    out = group_standardise(rewards, [0] * n)
    assert np.all(out == 0.0), out


def test_standardise_accepts_lists_and_returns_float_array():
    out = group_standardise([0, 1], [0, 0])
    assert isinstance(out, np.ndarray) and out.dtype == np.float64


def test_standardise_eps_in_denominator():
    # with a large eps the denominator is std + eps: [0,1] -> std .5, eps .5 -> (+-.5)/1 = +-.5
    np.testing.assert_allclose(group_standardise([0.0, 1.0], [0, 0], eps=0.5), [-0.5, 0.5])


# --------------------------------------------------------------------------------------------
# group_centre, leave_one_out
# --------------------------------------------------------------------------------------------

def test_group_centre_by_hand():
    # a [0,3,3] mean 2 -> [-2,1,1]; b [5,1] mean 3 -> [2,-2]; c [7] -> [0]
    expected = [-2.0, 2.0, 1.0, 0.0, -2.0, 1.0]
    np.testing.assert_allclose(group_centre(INTERLEAVED_R, INTERLEAVED_G), expected, atol=1e-12)


def test_leave_one_out_by_hand():
    # a [0,3,3]: 0 - (3+3)/2 = -3; 3 - (0+3)/2 = 1.5; 3 - 1.5 = 1.5
    # b [5,1]:   5 - 1 = 4; 1 - 5 = -4
    # c [7]:     lone -> 0
    expected = [-3.0, 4.0, 1.5, 0.0, -4.0, 1.5]
    np.testing.assert_allclose(leave_one_out(INTERLEAVED_R, INTERLEAVED_G), expected, atol=1e-12)


def test_leave_one_out_is_scaled_centre():
    # RLOO = n/(n-1) * (R - mean): group of 4 [1,2,3,6] mean 3 -> centre [-2,-1,0,3] * 4/3
    r = [1.0, 2.0, 3.0, 6.0]
    np.testing.assert_allclose(leave_one_out(r, [0] * 4), [-8 / 3, -4 / 3, 0.0, 4.0], atol=1e-12)


# --------------------------------------------------------------------------------------------
# zero_variance_count, gpg_alpha
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "rewards, groups, m",
    [
        ([1, 1, 0, 1, 2], ["g", "g", "h", "h", "k"], 3),  # g flat (2) + k lone (1)
        ([0, 1, 2, 3], [0, 0, 1, 1], 0),  # no flat group
        ([2, 2, 2, 2], [0, 0, 1, 1], 4),  # all flat
        ([1, 5, 1, 5, 1], ["x", "y", "x", "y", "x"], 5),  # interleaved, both flat
        ([1, 5, 2, 5, 1], ["x", "y", "x", "y", "x"], 2),  # x = [1,2,1] not flat; y = [5,5] flat
    ],
)
def test_zero_variance_count(rewards, groups, m):
    assert zero_variance_count(np.array(rewards, dtype=float), groups) == m


@pytest.mark.parametrize(
    "rewards, groups, alpha",
    [
        ([1, 1, 0, 1, 2], ["g", "g", "h", "h", "k"], 2.5),  # B=5, M=3 -> 5/(5-3)
        ([0, 1, 2, 3], [0, 0, 1, 1], 1.0),  # M=0 -> B/B
        ([2, 2, 2, 2], [0, 0, 1, 1], 1.0),  # every group flat -> 1 by definition (no division by 0)
        ([1, 5, 2, 5, 1, 0], ["x", "y", "x", "y", "x", "z"], 2.0),  # y flat 2 + z lone 1: 6/(6-3)
    ],
)
def test_gpg_alpha(rewards, groups, alpha):
    assert gpg_alpha(np.array(rewards, dtype=float), groups) == pytest.approx(alpha)


def test_formulas_are_pure():
    r = np.array(INTERLEAVED_R)
    before = r.copy()
    for fn in (formulas.group_standardise, formulas.group_centre, formulas.leave_one_out):
        fn(r, INTERLEAVED_G)
    np.testing.assert_array_equal(r, before)
