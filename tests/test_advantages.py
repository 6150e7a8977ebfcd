"""Advantage estimator plugins, fetched by name through the plugin registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fadtq.errors import FadtqError
from fadtq.plugin_manager import BUILTIN_PROVIDER, default_plugins

SQ2 = math.sqrt(2.0)
# groups interleaved and of unequal size (see test_formulas.py for the same fixture):
#   a = idx 0,2,5 -> [0,3,3]; b = idx 1,4 -> [5,1]; c = idx 3 -> [7]
R = [0.0, 5.0, 3.0, 7.0, 1.0, 3.0]
G = ["a", "b", "a", "c", "b", "a"]


def estimator(name):
    return default_plugins().advantages.get(name)


@pytest.mark.parametrize(
    "name, loss, needs_reference",
    [
        ("gpg", "policy_gradient", False),
        ("grpo", "clipped_ratio", True),
        ("dr_grpo", "policy_gradient", False),
        ("rloo", "policy_gradient", False),
    ],
)
def test_estimator_declarations(name, loss, needs_reference):
    est = estimator(name)
    assert est.name == name
    assert est.loss == loss
    assert default_plugins().losses.get(est.loss).needs_reference is needs_reference
    assert default_plugins().advantages.provider(name) == BUILTIN_PROVIDER


@pytest.mark.parametrize("name", ["gpg", "grpo"])
def test_standardised_estimators_by_hand(name):
    # a [0,3,3]: mean 2, pop std sqrt2 -> [-sqrt2, 1/sqrt2, 1/sqrt2]; b [5,1]: mean 3, std 2 -> [1,-1]; c lone -> 0
    expected = [-SQ2, 1.0, 1 / SQ2, 0.0, -1.0, 1 / SQ2]
    out = estimator(name)(R, G)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)


def test_gpg_two_rollouts_plus_minus_one():
    # [0,1]: mean .5, pop std .5 -> -1, +1
    np.testing.assert_allclose(estimator("gpg")([0, 1], ["p", "p"]), [-1, 1], rtol=1e-9)


def test_gpg_ddof_option():
    # ddof=1 on [1,2,3]: sample std 1 -> [-1,0,1]
    np.testing.assert_allclose(estimator("gpg")([1, 2, 3], [0, 0, 0], ddof=1), [-1, 0, 1], atol=1e-9)


def test_dr_grpo_by_hand():
    # R - group mean: a [-2,1,1], b [2,-2], c [0]
    np.testing.assert_allclose(estimator("dr_grpo")(R, G), [-2, 2, 1, 0, -2, 1], atol=1e-12)


def test_rloo_by_hand():
    # R - mean of the others: a [0-3, 3-1.5, 3-1.5], b [5-1, 1-5], c lone 0
    np.testing.assert_allclose(estimator("rloo")(R, G), [-3, 4, 1.5, 0, -4, 1.5], atol=1e-12)


@pytest.mark.parametrize("name", ["gpg", "grpo", "dr_grpo", "rloo"])
def test_flat_and_single_groups_give_zero(name):
    # group x flat [2,2,2], group y lone [1]
    out = estimator(name)([2.0, 1.0, 2.0, 2.0], ["x", "y", "x", "x"])
    np.testing.assert_allclose(out, [0, 0, 0, 0], atol=1e-12)


def test_gpg_adjust_gd_off_by_default():
    # rewards: g [0,1] (varies), h [1,1] (flat), k [2] (lone) -> B=5, M=3, alpha=5/2
    r, g = [0.0, 1.0, 1.0, 1.0, 2.0], ["g", "g", "h", "h", "k"]
    plain = estimator("gpg")(r, g)
    np.testing.assert_allclose(plain, [-1, 1, 0, 0, 0], rtol=1e-9, atol=1e-12)


def test_gpg_adjust_gd_scales_by_alpha():
    # same batch: alpha = B/(B-M) = 5/(5-3) = 2.5 -> [-1,1,0,0,0] * 2.5 = [-2.5, 2.5, 0, 0, 0]
    r, g = [0.0, 1.0, 1.0, 1.0, 2.0], ["g", "g", "h", "h", "k"]
    adjusted = estimator("gpg")(r, g, adjust_gd=True)
    np.testing.assert_allclose(adjusted, [-2.5, 2.5, 0, 0, 0], rtol=1e-9, atol=1e-12)


def test_gpg_adjust_gd_all_flat_is_alpha_one():
    # every group flat: alpha = 1 and all advantages are 0 (no division by B - M = 0)
    out = estimator("gpg")([1.0, 1.0, 3.0, 3.0], [0, 0, 1, 1], adjust_gd=True)
    np.testing.assert_array_equal(out, [0, 0, 0, 0])


def test_unknown_estimator_lists_known_names_and_flag():
    with pytest.raises(FadtqError) as info:
        estimator("gpgg")
    message = str(info.value)
    assert "--advantage" in message and "'gpgg'" in message
    for name in ("dr_grpo", "gpg", "grpo", "rloo"):
        assert name in message
